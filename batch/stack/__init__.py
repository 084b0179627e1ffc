"""Deploying PoseBatch on AWS: the Lambda zip (`lambda_zip`), the artifacts bucket and uploads
(`artifacts`), CloudFormation change sets (`cloudformation`), the serving image and ECR (`image`), and
the `stack deploy` / `stack delete` flows that join them (`deploy`). Plain boto3 throughout. They work
from a checkout (editable install): the template, the Dockerfile and the handlers' sources are read
from it."""
