"""Fine-tuning pose models in the PoseBatch container (`container/serve train`, SageMaker's training contract),
evaluating them as a processing job on the same image (`container/serve evaluate`), and launching training
jobs from the CLI (`pose-batch train`). docs/training.md has the flow."""
