"""The reorganised SAM pieces compute what the stock modules compute (search/vision/fast_sam_model.py)."""

import copy

import pytest
import torch
from segment_anything.modeling.image_encoder import Attention as EncoderAttention

from search.vision.fast_sam_model import ChunkedAttention, PromptDecoder, use_chunked_attention
from search.vision.sam import load_sam_model


@pytest.fixture(scope="module")
def sam():
    model = load_sam_model(model_type="tiny", checkpoint="")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # SAM initialises relative positions to zero; make them matter
        for block in model.image_encoder.blocks:
            block.attn.rel_pos_h.normal_(0, 0.5, generator=generator)
            block.attn.rel_pos_w.normal_(0, 0.5, generator=generator)
    return model


@pytest.fixture(scope="module")
def embeddings():
    return torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(4))


def point_prompts(sam, count: int, seed: int = 5) -> torch.Tensor:
    points = torch.rand(count, 1, 2, generator=torch.Generator().manual_seed(seed)) * 1024
    sparse, _ = sam.prompt_encoder(points=(points, torch.ones(count, 1, dtype=torch.int)), boxes=None, masks=None)
    return sparse


def stock_decoder(sam, embeddings, sparse):
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(len(sparse), -1, 64, 64)
    return sam.mask_decoder(
        image_embeddings=embeddings,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
    )


def test_the_loader_switches_every_encoder_block_to_chunked_attention(sam):
    assert all(type(block.attn) is ChunkedAttention for block in sam.image_encoder.blocks)


@torch.inference_mode()
def test_chunked_attention_gives_the_stock_encoder_output(sam, monkeypatch):
    stock = copy.deepcopy(sam.image_encoder)
    for block in stock.blocks:
        block.attn.__class__ = EncoderAttention
    # 1000 rows per chunk: the global block's 4096 queries end in a partial chunk.
    monkeypatch.setattr(ChunkedAttention, "rows", 1000)
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(6))
    expected = stock(image)
    assert expected.abs().mean() > 0.1
    torch.testing.assert_close(sam.image_encoder(image), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; bench/gpu_ingest.sh runs it on a GPU")
@torch.inference_mode()
def test_chunked_attention_runs_under_cuda_bf16_autocast(sam):
    """CUDA's autocast, unlike the CPU's, computes softmax in float32 while the values are bfloat16
    (MODEL_BF16=true failed every image on an H100 with "expected scalar type Float but found BFloat16")."""
    encoder = copy.deepcopy(sam.image_encoder).cuda()
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(6)).cuda()
    expected = encoder(image)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = encoder(image)
    similarity = torch.nn.functional.cosine_similarity(got.float().flatten(), expected.flatten(), dim=0)
    assert similarity > 0.99, similarity


def test_chunked_attention_leaves_other_attention_classes_alone(sam):
    clone = copy.deepcopy(sam)
    clone.image_encoder.blocks[0].attn.__class__ = type("Custom", (EncoderAttention,), {})
    use_chunked_attention(clone)
    assert type(clone.image_encoder.blocks[0].attn).__name__ == "Custom"
    assert type(clone.image_encoder.blocks[1].attn) is ChunkedAttention


@torch.inference_mode()
def test_prompt_decoder_gives_the_stock_masks_and_iou(sam, embeddings):
    sparse = point_prompts(sam, 12)
    masks, iou = stock_decoder(sam, embeddings, sparse)
    ours_iou, rows, ours_masks = PromptDecoder(sam, embeddings)(sparse, pred_iou_thresh=0.0)
    assert rows.tolist() == list(range(12))
    torch.testing.assert_close(ours_iou, iou, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_masks, masks, atol=1e-5, rtol=1e-4)
    assert ((ours_masks > 0) == (masks > 0)).float().mean() > 0.9999


@torch.inference_mode()
def test_prompt_decoder_follows_a_transformer_of_any_depth(sam, embeddings):
    from segment_anything.modeling.transformer import TwoWayTransformer

    deeper = copy.deepcopy(sam)
    deeper.mask_decoder.transformer = TwoWayTransformer(depth=3, embedding_dim=256, num_heads=8, mlp_dim=2048)
    sparse = point_prompts(deeper, 6)
    masks, iou = stock_decoder(deeper, embeddings, sparse)
    ours_iou, _, ours_masks = PromptDecoder(deeper, embeddings)(sparse, pred_iou_thresh=0.0)
    torch.testing.assert_close(ours_iou, iou, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_masks, masks, atol=1e-5, rtol=1e-4)


@torch.inference_mode()
def test_prompt_decoder_upscales_only_prompts_with_a_mask_over_the_threshold(sam, embeddings):
    sparse = point_prompts(sam, 16, seed=7)
    masks, iou = stock_decoder(sam, embeddings, sparse)
    best = iou.max(dim=1).values.sort().values
    threshold = float(best[7] + best[8]) / 2  # half the prompts have a passing output, none sits on it
    ours_iou, rows, ours_masks = PromptDecoder(sam, embeddings)(sparse, pred_iou_thresh=threshold)
    expected_rows = torch.nonzero((iou > threshold).any(dim=1))[:, 0]
    assert len(expected_rows) == 8
    assert rows.tolist() == expected_rows.tolist()
    torch.testing.assert_close(ours_iou, iou, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_masks, masks[expected_rows], atol=1e-5, rtol=1e-4)


@torch.inference_mode()
def test_prompt_decoder_with_no_prompt_over_the_threshold_returns_no_masks(sam, embeddings):
    iou, rows, masks = PromptDecoder(sam, embeddings)(point_prompts(sam, 4), pred_iou_thresh=1e6)
    assert iou.shape == (4, 3) and len(rows) == 0 and masks.shape == (0, 3, 256, 256)
