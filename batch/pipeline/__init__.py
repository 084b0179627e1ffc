"""The training pipeline: train -> evaluate -> condition (AP >= MinAP) -> register, else fail."""
