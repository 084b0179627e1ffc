"""PoseBatch: batch pose estimation with Ultralytics YOLO pose models on SageMaker."""

__version__ = "0.1.0"
