"""Models that see: CLIP, Segment Anything and the demo's own small models, and what runs them.

- runtime: device, precision, int8, seeded random weights, the allocator policy; ModelUnavailable
- identity: the configured CLIP's name and dimension, without torch
- registry: get_clip / get_proposer (loaded once per process), reset_models, weights_missing
- clip: OpenCLIP loading and embedding; sam, fast_sam, fast_sam_model: Segment Anything
- proposers (Proposal, the colour proposer, joining two), objectness (the demo's learned map)
- pixels: perceptual hashes and pixel-for-pixel comparisons (near-duplicates, a crop's source)
- training/: the generated scenes and the training of the demo CLIP and objectness map

Nothing here imports Django models, gallery or the rest of search (tests/test_imports.py).
"""
