"""The SageMaker serving container: its HTTP contract (`app.py`) and what it does with each
invocation, S3 reads and writes included (`invocations.py`)."""
