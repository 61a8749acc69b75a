"""SAM's image encoder and mask decoder, reorganised for many prompts on a CPU: same maths, less work.

Two pieces, both used by `search.vision.fast_sam.FastMaskGenerator` and both checked against the stock
modules in tests/search/test_fast_sam_model.py:

* `ChunkedAttention` replaces the encoder's attention forward. The stock one materialises the whole
  attention matrix (12 heads x 4096 x 4096 floats, 800 MB, in each global block) and adds the
  relative-position terms to it in two full passes; this one does the same products, adds and
  softmax one block of query rows at a time, so the block stays in cache. The result is
  bit-identical on this machine (same dot products in the same order).

* `PromptDecoder` runs the mask decoder for a batch of point prompts on one image.
  - Work that depends only on the image is done once per image, not once per prompt: without a
    mask prompt the first layer's image keys are the same for every prompt, so its key/value
    projections (token-to-image) and query projection (image-to-token) are computed once.
  - Attention between the 7 prompt tokens and the 4096 image tokens is re-associated so that no
    4096 x 256 x 128 projection runs per prompt: q . (W_k x) = (W_k^T q) . x, and
    softmax(..) (x W_v^T) = (softmax(..) x) W_v^T (rows of a softmax sum to one, so the value bias
    passes through). Per prompt that cuts the transformer from ~1.3 to ~0.4 GMAC.
  - The predicted IoU needs only the IoU token, so it is computed before the costly upscaling
    network, which then runs only for prompts with a mask over `pred_iou_thresh` (the stock
    generator drops the others after computing them).
  Multimask output only (what the automatic generator asks for); results match the stock decoder
  to float rounding (~1e-6).
"""

import math

import torch
from segment_anything.modeling.image_encoder import Attention as EncoderAttention
from segment_anything.modeling.image_encoder import get_rel_pos


class ChunkedAttention(EncoderAttention):
    """The encoder's attention with relative positions, computed `rows` query rows at a time."""

    rows = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.num_heads, height * width, -1).unbind(0)
        heads, tokens, dim = q.shape
        scaled_q, keys_t = q * self.scale, k.transpose(-2, -1)
        if self.use_rel_pos:  # the stock add_decomposed_rel_pos terms, per query row
            r_q = q.reshape(heads, height, width, dim)
            rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, get_rel_pos(height, height, self.rel_pos_h)).reshape(
                heads, tokens, height
            )
            rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, get_rel_pos(width, width, self.rel_pos_w)).reshape(
                heads, tokens, width
            )
        out = torch.empty_like(q)
        for start in range(0, tokens, self.rows):
            end = min(tokens, start + self.rows)
            attn = torch.bmm(scaled_q[:, start:end], keys_t)
            if self.use_rel_pos:
                grid = attn.view(heads, end - start, height, width)
                grid.add_(rel_h[:, start:end, :, None]).add_(rel_w[:, start:end, None, :])
            # CUDA's autocast computes softmax in float32 while v is bfloat16; `out=` is never cast.
            torch.bmm(attn.softmax(dim=-1).to(v.dtype), v, out=out[:, start:end])
        out = (
            out.view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
        )
        return self.proj(out)


def use_chunked_attention(sam) -> None:
    """Switch every attention block of `sam`'s image encoder to ChunkedAttention (same parameters)."""
    for block in sam.image_encoder.blocks:
        if type(block.attn) is EncoderAttention:
            block.attn.__class__ = ChunkedAttention


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, heads * d] -> [B, heads, T, d]"""
    batch, tokens, channels = x.shape
    return x.reshape(batch, tokens, heads, channels // heads).transpose(1, 2)


def _join_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, T, d] -> [B, T, heads * d]"""
    batch, heads, tokens, dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * dim)


class PromptDecoder:
    """SAM's mask decoder for batches of point prompts on one image (see the module docstring).

    decoder = PromptDecoder(sam, image_embeddings)            # once per image
    iou, rows, masks = decoder(sparse_prompt_embeddings, pred_iou_thresh)
    iou: [B, 3] predicted IoU of the three multimask outputs of every prompt; rows: the prompts
    that have an output over the threshold (all of them when the threshold is <= 0); masks:
    [len(rows), 3, 256, 256] low-resolution mask logits of those prompts.
    """

    def __init__(self, sam, image_embeddings: torch.Tensor):
        self.decoder = sam.mask_decoder
        transformer = self.decoder.transformer
        first = transformer.layers[0]
        prompt_encoder = sam.prompt_encoder
        # Without a mask prompt the dense prompt embedding is no_mask_embed for every prompt.
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        self.size = image_embeddings.shape[-2:]
        keys = (image_embeddings + dense)[0].flatten(1).T.contiguous()  # [N, C]
        self.pe = prompt_encoder.get_dense_pe()[0].flatten(1).T.contiguous()
        with_pe = keys + self.pe
        token_to_image, image_to_token = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        heads = token_to_image.num_heads
        self.first_k = _split_heads(token_to_image.k_proj(with_pe)[None], heads)[0]  # [heads, N, d]
        self.first_v = _split_heads(token_to_image.v_proj(keys)[None], heads)[0]
        self.first_q_t = _split_heads(image_to_token.q_proj(with_pe)[None], heads)[0].transpose(1, 2).contiguous()
        self.first_keys_plus_bias = keys + image_to_token.out_proj.bias  # residual + the out_proj bias

    def __call__(self, sparse: torch.Tensor, pred_iou_thresh: float):
        decoder, transformer = self.decoder, self.decoder.transformer
        first = transformer.layers[0]
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        batch = sparse.shape[0]
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse), dim=1)  # [B, T, C]

        # Layer 1 (no positional encoding on its self-attention, image side shared by all prompts).
        queries = first.norm1(first.self_attn(q=tokens, k=tokens, v=tokens))
        attn = first.cross_attn_token_to_image
        q = _split_heads(attn.q_proj(queries + tokens), attn.num_heads)
        probs = torch.softmax(torch.matmul(q, self.first_k.transpose(1, 2)) / math.sqrt(q.shape[-1]), dim=-1)
        queries = first.norm2(queries + attn.out_proj(_join_heads(probs @ self.first_v)))
        queries = first.norm3(queries + first.mlp(queries))
        attn = first.cross_attn_image_to_token
        k = _split_heads(attn.k_proj(queries + tokens), attn.num_heads)
        logits = torch.matmul(k / math.sqrt(k.shape[-1]), self.first_q_t)  # [B, heads, T, N]
        probs = torch.softmax(logits, dim=2).flatten(1, 2)  # over the tokens, per head and pixel
        keys = first.norm4(self._image_to_token_out(attn, probs, queries, self.first_keys_plus_bias))

        # Later layers (one in every released SAM): image keys differ per prompt from here on.
        for layer in transformer.layers[1:]:
            q = queries + tokens
            queries = layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries))
            keys_pe = keys + self.pe
            queries = layer.norm2(
                queries + self._token_to_image(layer.cross_attn_token_to_image, queries + tokens, keys, keys_pe)
            )
            queries = layer.norm3(queries + layer.mlp(queries))
            attn = layer.cross_attn_image_to_token
            probs = self._image_to_token_probs(attn, keys_pe, queries + tokens)
            keys = layer.norm4(self._image_to_token_out(attn, probs, queries, keys + attn.out_proj.bias))

        # Final token-to-image attention, then the IoU head: it needs no mask.
        keys_pe = keys + self.pe
        final = transformer.final_attn_token_to_image
        queries = transformer.norm_final_attn(queries + self._token_to_image(final, queries + tokens, keys, keys_pe))
        iou = decoder.iou_prediction_head(queries[:, 0])[:, 1:].float()  # float32 under bf16 autocast too
        if pred_iou_thresh > 0.0:
            rows = torch.nonzero((iou > pred_iou_thresh).any(dim=1))[:, 0]
        else:
            rows = torch.arange(batch, device=iou.device)
        height, width = self.size
        if len(rows) == 0:
            return iou, rows, iou.new_zeros((0, 3, 4 * height, 4 * width))

        # Upscaling and hypernetworks, stock modules, for the prompts that can yield a mask.
        mask_tokens = queries[rows, 2 : 1 + decoder.num_mask_tokens]  # multimask outputs 1..3
        hyper = torch.stack(
            [decoder.output_hypernetworks_mlps[i + 1](mask_tokens[:, i]) for i in range(mask_tokens.shape[1])], dim=1
        )
        src = keys[rows].transpose(1, 2).reshape(len(rows), -1, height, width)
        upscaled = decoder.output_upscaling(src)
        b, c, h, w = upscaled.shape
        masks = (hyper @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        return iou, rows, masks.float()

    @staticmethod
    def _token_image_logits(token_proj, image_proj, heads: int, tokens, keys_pe):
        """token_proj(tokens) . image_proj(keys_pe) per head over sqrt(d), as [B, heads*T, N],
        without projecting the image side: q . (W x + b) = (W^T q) . x + q . b."""
        q = _split_heads(token_proj(tokens), heads)  # [B, heads, T, d]
        dim = q.shape[-1]
        q = q / math.sqrt(dim)
        through = torch.einsum("bhtd,hdc->bhtc", q, image_proj.weight.view(heads, dim, -1))  # [B, heads, T, C]
        batch, _, count, channels = through.shape
        bias = torch.einsum("bhtd,hd->bht", q, image_proj.bias.view(heads, dim)).reshape(batch, heads * count, 1)
        return torch.baddbmm(bias, through.reshape(batch, heads * count, channels), keys_pe.transpose(1, 2))

    @classmethod
    def _token_to_image(cls, attn, query_tokens, keys, keys_pe):
        """attn(q=query_tokens, k=keys_pe, v=keys) without projecting the image side per prompt."""
        heads = attn.num_heads
        probs = torch.softmax(cls._token_image_logits(attn.q_proj, attn.k_proj, heads, query_tokens, keys_pe), dim=-1)
        batch, rows, _ = probs.shape
        weighted_keys = torch.bmm(probs, keys).view(batch, heads, rows // heads, -1)  # [B, heads, T, C]
        dim = attn.internal_dim // heads
        w_v = attn.v_proj.weight.view(heads, dim, -1)
        out = torch.einsum("bhtc,hdc->bhtd", weighted_keys, w_v) + attn.v_proj.bias.view(1, heads, 1, dim)
        return attn.out_proj(_join_heads(out))

    @classmethod
    def _image_to_token_probs(cls, attn, keys_pe, key_tokens):
        """softmax over the tokens of q_proj(keys_pe) . k_proj(key_tokens), as [B, heads*T, N]."""
        heads = attn.num_heads
        logits = cls._token_image_logits(attn.k_proj, attn.q_proj, heads, key_tokens, keys_pe)
        batch, rows, pixels = logits.shape
        return torch.softmax(logits.view(batch, heads, rows // heads, pixels), dim=2).view(batch, rows, pixels)

    @staticmethod
    def _image_to_token_out(attn, probs, value_tokens, residual):
        """residual + out_proj(attention output) for every pixel, with out_proj folded into the values."""
        heads = attn.num_heads
        v = _split_heads(attn.v_proj(value_tokens), heads)  # [B, heads, T, d]
        dim = v.shape[-1]
        v_through_out = torch.einsum("bhtd,chd->bhtc", v, attn.out_proj.weight.view(-1, heads, dim))
        batch, _, tokens, channels = v_through_out.shape
        return torch.baddbmm(residual, probs.transpose(1, 2), v_through_out.reshape(batch, heads * tokens, channels))
