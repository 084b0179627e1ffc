"""The SageMaker serving container's HTTP contract (`app.py`); what it does with each invocation, S3
reads and writes included, is `batch/transform_handler.py`."""
