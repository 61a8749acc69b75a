"""The demo profile's models, trained here: generated scenes (scenes), the small CLIP (demo_clip)
and the objectness map (objectness). Used by manage.py train_demo_model / train_demo_proposer,
load_demo, the tests and the benchmarks; never by a running web process or worker."""
