"""Image bytes -> pose results: decode, letterbox, model forward (torch or ONNX Runtime), NMS, and the
conversion to original-pixel `PoseResult`s, behind one dynamic batcher."""
