"""The SageMaker Model Registry for PoseBatch: model packages (`packages`), the approved default model
(`default_model`), and what an approval deploys (`approval`). Standard library and boto3 only: the
approval Lambda imports it."""
