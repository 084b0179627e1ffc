"""Videos: poses and tracks for every frame, through `predict`, asynchronous inference and manifest mode.

    probe.py      the container header: stream facts, and the limits checked before decoding
    frames.py     the frame source: decoded, upright, timestamped, sampled; damage ends it, never the run
    tracking.py   Ultralytics' trackers (ByteTrack, BoT-SORT) assigning ids to the batched results
    writer.py     the annotated sink: H.264 yuv420p MP4 with +faststart
    pipeline.py   one video as a stream: decode -> the engine's batcher -> track -> JSON Lines + MP4
    records.py    the JSON Lines records (header, frame) and their schema
    flows.py      the one call each flow makes: predict's files, an /invocations body, a manifest line

Nothing here imports the server or the flows: they call `flows.py`.
"""
