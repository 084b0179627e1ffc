"""Keypoint datasets for training: Ultralytics' YOLO pose layout and COCO keypoints folders, in a local
folder or under an S3 prefix, checked before any job starts (`check.py`) and converted where the training
runs (`coco_folder.py`, with Ultralytics' own converter)."""
