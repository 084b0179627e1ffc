"""The embedded local stack: moto (S3/SNS/SQS/EventBridge) plus the project's own stand-ins for the
parts of SageMaker and Lambda that moto does not run."""
