"""The demo profile's learned objectness map (search/vision/objectness.py): its training code, its loader's
errors, and that the committed network finds what the colour proposer loses."""

import numpy as np
import pytest
from PIL import Image as PILImage

from search.vision.objectness import OBJECTNESS_WEIGHTS, ObjectnessProposer, load_objectness
from search.vision.proposers import ColourProposer, JoinedProposer, box_iou, filter_proposals
from search.vision.runtime import ModelUnavailable
from search.vision.training import demo
from search.vision.training.objectness import (
    CONTACT_GAP,
    speckled_background,
    train_objectness,
    training_scene,
    training_target,
)


def test_a_training_scene_marks_the_inside_of_its_shapes_only():
    palette = np.array(list(demo.COLOURS.values()), dtype=np.float32)
    marked = []
    for seed in range(8):
        rgb, target = training_scene(np.random.default_rng(seed), [], speckled_share=0.0)
        assert rgb.shape == (240, 320, 3) and rgb.dtype == np.uint8 and target.shape == (240, 320)
        assert set(np.unique(target)) <= {0.0, 1.0} and 0 < target.mean() < 0.5
        marked.append(rgb[target == 1].astype(np.float32))
    # What they mark are the shapes' colours (give or take the jitter and JPEG at the edges), not the
    # backgrounds'.
    marked = np.concatenate(marked)
    nearest = np.linalg.norm(marked[:, None, :] - palette[None], axis=2).min(axis=1)
    assert np.mean(nearest < 60) > 0.9


def test_a_speckled_background_is_a_plain_colour_strewn_with_specks():
    rng = np.random.default_rng(11)
    for _ in range(20):
        image, plain = speckled_background(320, 240, rng)
        pixels = np.asarray(image, np.float32).reshape(-1, 3)
        far = np.linalg.norm(pixels - plain, axis=1)
        assert image.size == (320, 240) and plain.shape == (3,)
        assert np.median(far) < 16  # mostly the plain colour, give or take the blur and noise
        assert 0.001 < np.mean(far > 40) < 0.6  # and some specks that stand out from it


def test_on_a_speckled_background_a_shape_of_its_plain_colour_is_still_an_object():
    """It shows only as a patch without specks (a black shape on a night sky): the target marks it."""
    import cv2

    rng, seen = np.random.default_rng(5), 0
    for _ in range(30):
        rgb, target = training_scene(rng, [], speckled_share=1.0)
        background = rgb[target == 0].astype(np.float32)
        count, labels = cv2.connectedComponents(target.astype(np.uint8), connectivity=4)
        for label in range(1, count):
            inside = rgb[labels == label].astype(np.float32)
            if len(inside) > 50 and np.linalg.norm(np.median(inside, 0) - np.median(background, 0)) < 12:
                seen += 1
                # The plain colour without specks: less spread than the background around it.
                assert inside.std(0).mean() < background.std(0).mean()
    assert seen >= 5


def test_a_target_keeps_thin_parts_whole_and_touching_shapes_apart():
    """A star's arms are 1-3 px wide on a small star: a target shrunk all round lost them, and the
    network learned to mark a small star's middle only (a box a tenth of the star's)."""
    import cv2

    star = np.asarray(demo.rotated_shape("star", (255, 0, 0), 24, 0.0).getchannel("A")) > 127
    lone = np.zeros((60, 80), bool)
    lone[10 : 10 + star.shape[0], 10 : 10 + star.shape[1]] = star
    assert np.array_equal(training_target([lone], lone.shape) == 1, lone)

    left, right = np.zeros((60, 80), bool), np.zeros((60, 80), bool)
    left[10:40, 10:40], right[10:40, 40:70] = True, True  # two squares side by side
    target = training_target([left, right], left.shape)
    count, _ = cv2.connectedComponents(target.astype(np.uint8), connectivity=4)
    assert count - 1 == 2  # two areas
    assert np.all(target[10:40, 40 - CONTACT_GAP : 40 + CONTACT_GAP] == 0) and np.all(
        target[10:40, 10 : 40 - CONTACT_GAP] == 1
    )
    assert np.all(target[10:40, 40 + CONTACT_GAP : 70] == 1)  # only the contact is given up


def test_training_writes_weights_the_loader_reads_and_the_proposer_uses(tmp_path):
    output = tmp_path / "objectness.pt"
    report = train_objectness(steps=3, scenes=4, batch_size=2, crop=64, output=output, log=lambda line: None)
    assert report.steps == 3 and np.isfinite(report.final_loss) and output.is_file()
    proposer = ObjectnessProposer(load_objectness(output))
    picture = PILImage.new("RGB", (200, 150), (90, 120, 60))
    for p in proposer.propose(picture):  # an untrained network: whatever it marks lies in the picture
        assert 0 <= p.box[0] < p.box[2] <= 200 and 0 <= p.box[1] < p.box[3] <= 150


def test_missing_or_broken_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(ModelUnavailable, match="train_demo_proposer"):
        load_objectness(tmp_path / "nothing-here.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_objectness(broken)


def test_the_worker_reports_missing_objectness_weights_and_loads_the_joined_proposer(settings, tmp_path):
    from search.vision.registry import load_proposer, weights_missing

    settings.REGION_PROPOSER = "colour+objectness"
    settings.OBJECTNESS_WEIGHTS = str(OBJECTNESS_WEIGHTS)
    assert "objectness" not in weights_missing()
    proposer = load_proposer()
    assert isinstance(proposer, JoinedProposer) and proposer.name == "colour+objectness"
    settings.OBJECTNESS_WEIGHTS = str(tmp_path / "gone.pt")
    assert "train_demo_proposer" in weights_missing()["objectness"]
    with pytest.raises(ModelUnavailable):
        load_proposer()


def found_share(proposer, scenes) -> float:
    """Share of the scenes' true objects that a kept proposal boxes (IoU >= 0.5)."""
    import io

    hits = []
    for scene in scenes:
        picture = PILImage.open(io.BytesIO(scene.jpeg)).convert("RGB")
        kept = filter_proposals(
            proposer.propose(picture),
            width=picture.width,
            height=picture.height,
            min_area_fraction=0.0005,
            nms_iou=0.8,
            max_count=24,
        )
        hits += [any(box_iou(p.box, s.box) >= 0.5 for p in kept) for s in scene.shapes]
    return float(np.mean(hits))


def test_on_photographs_the_network_finds_objects_the_colour_proposer_loses():
    """Held-out scenes (bench/heldout.py: shapes on photographs the network never saw). The colour
    proposer loses a shape whose border fades into the photograph somewhere; joined with the
    network, most of those are found. Floors under today's figures (bench/README.md)."""
    from bench import heldout

    rng = np.random.default_rng(99)
    photos = heldout.photographs(heldout.TUNING_PHOTOGRAPHS)
    scenes = [heldout.scene(number, rng, photos) for number in range(24)]
    colour = ColourProposer(min_area_fraction=0.0005)
    joined = JoinedProposer(colour, ObjectnessProposer(load_objectness(OBJECTNESS_WEIGHTS), min_area_fraction=0.0005))
    alone, both = found_share(colour, scenes), found_share(joined, scenes)
    assert both >= 0.88 and both >= alone + 0.04, (alone, both)


def test_the_colour_proposers_boxes_win_over_near_copies_from_the_network():
    picture, _ = demo.scene(640, 480, np.random.default_rng(21), count=3)
    colour = ColourProposer(min_area_fraction=0.0005)
    joined = JoinedProposer(colour, ObjectnessProposer(load_objectness(OBJECTNESS_WEIGHTS), min_area_fraction=0.0005))
    kept = filter_proposals(
        joined.propose(picture), width=640, height=480, min_area_fraction=0.0005, nms_iou=0.8, max_count=24
    )
    colour_boxes = {
        p.box
        for p in filter_proposals(
            colour.propose(picture), width=640, height=480, min_area_fraction=0.0005, nms_iou=0.8, max_count=24
        )
    }
    kept_boxes = {p.box for p in kept}
    assert colour_boxes <= kept_boxes  # the network's copy of a shape the colour proposer found is the one dropped
    assert all(0.0 <= p.score <= 1.0 for p in kept)


def test_train_demo_proposer_writes_the_weights_it_names(tmp_path):
    import io

    from django.core.management import call_command

    output, out = tmp_path / "objectness.pt", io.StringIO()
    call_command("train_demo_proposer", "--steps", "2", "--scenes", "3", "--output", str(output), stdout=out)
    assert "Trained 2 steps" in out.getvalue() and f"Saved {output}." in out.getvalue()
    assert load_objectness(output) is not None


class Boxes:
    """A proposer that proposes the boxes it is given: the input of the joining rule under test."""

    def __init__(self, name: str, *boxes):
        self.name, self.boxes = name, boxes

    def propose(self, image):
        from search.vision.proposers import Proposal

        return [Proposal(box=box, area_fraction=0.01, score=0.9) for box in self.boxes]


def test_the_second_proposer_adds_only_what_the_first_has_nothing_like():
    square = (8, 78, 183, 253)  # found whole by the first
    joined = JoinedProposer(
        Boxes("first", square),
        Boxes(
            "second",
            (10, 80, 180, 250),  # the same square: IoU 0.9
            (6, 76, 90, 252),  # its left half (the network split a large shape)
            (300, 300, 340, 340),  # something the first missed
            (20, 90, 40, 110),  # small, inside the square, 1/75 of it: its own object
            (30, 100, 205, 275),
        ),
    )  # IoU 0.62: close, but another box (one of them leaked)
    assert [p.box for p in joined.propose(None)] == [
        square,
        (300, 300, 340, 340),
        (20, 90, 40, 110),
        (30, 100, 205, 275),
    ]
    assert joined.name == "first+second"


def test_the_cap_on_regions_keeps_the_best_of_both_proposers():
    """A background of flat cells gives the colour proposer a box for every cell; ranked all above
    the network's, 30 cells filled REGION_MAX_PER_IMAGE's 24 places and the network's objects were lost."""
    cells = [(40 * i, 40 * j, 40 * i + 38, 40 * j + 38) for i in range(6) for j in range(5)]
    objects = [(500, 20, 540, 60), (500, 100, 530, 130)]
    joined = JoinedProposer(Boxes("colour", *cells), Boxes("network", *objects))
    kept = filter_proposals(
        joined.propose(None), width=640, height=480, min_area_fraction=0.0, nms_iou=0.8, max_count=24
    )
    assert len(kept) == 24
    assert {p.box for p in kept} >= set(objects)
    assert [p.box for p in kept[:4]] == [cells[0], objects[0], cells[1], objects[1]]  # turn about, best first


def blob(probability: np.ndarray, box: tuple[int, int, int, int], value: float) -> None:
    x0, y0, x1, y1 = box
    probability[y0:y1, x0:x1] = value


def test_an_area_that_falls_apart_at_the_next_level_gives_its_parts():
    """A black shape on a dark part of a photograph: the map's halo (0.5-0.7) joins it to its
    neighbour at 0.5; above 0.7 they are two areas, and each is boxed alone."""
    probability = np.zeros((100, 200), np.float32)
    blob(probability, (10, 10, 190, 60), 0.6)  # the halo joining them
    blob(probability, (20, 20, 60, 55), 0.97)
    blob(probability, (120, 15, 170, 55), 0.97)
    proposer = ObjectnessProposer(None, min_area_fraction=0.01)
    found = sorted((x, y, x + w, y + h) for x, y, w, h, _, _ in proposer.areas(probability))
    assert found == [(20, 20, 60, 55), (120, 15, 170, 55)]
    proposer.LEVELS = (0.5,)  # one level: the joined area (a strip of mean < MIN_MEAN) is all there is, and dropped
    assert proposer.areas(probability) == []


def test_a_sure_area_stays_whole_and_an_unsure_one_gives_only_a_sure_core():
    probability = np.zeros((100, 200), np.float32)
    blob(probability, (10, 10, 60, 60), 0.95)  # sure, one piece at every level
    blob(probability, (100, 10, 190, 90), 0.6)  # a flat patch the network is unsure of ...
    blob(probability, (120, 30, 150, 60), 0.95)  # ... with a sure core: a shape on it
    blob(probability, (160, 70, 180, 85), 0.75)  # ... and a lukewarm one: above 0.7, under MIN_PART_MEAN
    proposer = ObjectnessProposer(None, min_area_fraction=0.005)
    found = sorted((x, y, x + w, y + h) for x, y, w, h, _, _ in proposer.areas(probability))
    assert found == [(10, 10, 60, 60), (120, 30, 150, 60)]
