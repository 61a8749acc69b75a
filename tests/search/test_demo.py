"""Training the demo CLIP: the command's code path makes weights the pipeline's loader takes."""

import numpy as np

from search.vision.registry import get_clip, reset_models
from search.vision.training import demo, demo_clip


def test_training_writes_weights_the_pipeline_loads(tmp_path, settings):
    output = tmp_path / "demo.pt"
    report = demo_clip.train_demo_model(steps=2, batch_size=4, output=output, log=lambda line: None)
    assert output.stat().st_size > 0 and report.steps == 2
    assert 0.0 <= report.zero_shot_accuracy <= 1.0 and 0.0 <= report.varied_accuracy <= 1.0
    settings.CLIP_MODEL, settings.CLIP_PRETRAINED, settings.CLIP_CHECKPOINT = demo_clip.DEMO_MODEL, "", str(output)
    reset_models()
    try:
        vectors = get_clip().embed_texts(["a red circle", "background"])
    finally:
        reset_models()
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_training_pictures_vary_and_keep_the_object_in_frame():
    rng = np.random.default_rng(0)
    photos = demo.training_photographs()
    for colour, shape in demo.CLASSES[:8]:
        picture = demo.object_crop(colour, shape, rng, photos)
        assert picture.mode == "RGB" and 20 <= picture.width <= 140 and picture.height >= 12
        # The object's colour is there: some pixel lies close to it (JPEG and the jitter move it a little).
        distance = np.abs(np.asarray(picture, dtype=np.int16) - np.array(demo.COLOURS[colour])).max(axis=2)
        assert distance.min() <= 40, (colour, shape)
    sizes = {demo.background_patch(rng, photos).size for _ in range(10)}
    assert len(sizes) > 1
