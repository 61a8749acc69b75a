"""SAM's automatic mask generator with the same masks and much less work.

`FastMaskGenerator` takes the settings of segment_anything's `SamAutomaticMaskGenerator` and, for
the same settings, returns the same masks (tests/search/test_fast_sam.py compares them). It owns
its loop, built only from segment_anything's public pieces (`SamPredictor`, the `Sam` modules,
`segment_anything.utils.amg`), so an upgrade cannot change a private method under it; the upstream
code it mirrors is pinned by tests/search/test_sam_upstream_guard.py. The savings are all in work
the stock generator repeats or throws away:

* the mask decoder runs through `search.vision.fast_sam_model.PromptDecoder`: image-only work once per
  image, attention re-associated so nothing 4096 x 256 is projected per prompt, and the upscaling
  network only for prompts with a mask over the predicted-IoU threshold;
* the predicted-IoU filter runs before upsampling, so only surviving masks are upsampled to full
  resolution (upsampling is per mask, so this changes no pixel);
* each candidate keeps only its low-resolution logits (stability and box come from its
  full-resolution mask, which is then dropped); after NMS the survivors are upsampled again, the
  same way. The stock generator run-length encodes every candidate (a Python loop over every pixel
  run, which dominates with many or noisy masks) and decodes the survivors;
* everything runs under `torch.inference_mode`.

The image encoder's own speed-up (`use_chunked_attention`) is applied to the model by
`search.vision.sam.load_sam_model`; bench/README.md has the figures.
"""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor
from segment_anything.utils.amg import (
    MaskData,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from torchvision.ops.boxes import batched_nms, box_area

from search.vision.fast_sam_model import PromptDecoder


class FastMaskGenerator:
    """Automatic masks for a whole image: a grid of point prompts, filtered and de-duplicated.

    The settings and their defaults are SamAutomaticMaskGenerator's (binary masks only).
    """

    def __init__(
        self,
        model,
        *,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        min_mask_region_area: int = 0,
    ):
        self.predictor = SamPredictor(model)
        self.point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area

    @torch.inference_mode()
    def generate_batch(self, images: list[np.ndarray]) -> list[list[dict[str, Any]]]:
        """`generate` for several images, with SAM's image encoder run on all of them in one batch:
        a GPU then gets one large call instead of idling between images. Whole-image crops only
        (crop_n_layers=0, our setting); otherwise image by image."""
        if self.crop_n_layers > 0 or len(images) < 2:
            return [self.generate(image) for image in images]
        return [
            self.generate(image, encoded=encoded) for image, encoded in zip(images, self._encode(images), strict=True)
        ]

    def _encode(self, images: list[np.ndarray]) -> list[tuple]:
        """SamPredictor.set_image's preparation for each image, then one encoder call for all."""
        predictor, model = self.predictor, self.predictor.model
        inputs, sizes = [], []
        for image in images:
            transformed = predictor.transform.apply_image(image)
            tensor = torch.as_tensor(transformed, device=predictor.device).permute(2, 0, 1).contiguous()[None]
            inputs.append(model.preprocess(tensor))
            sizes.append((image.shape[:2], tuple(tensor.shape[-2:])))
        features = model.image_encoder(torch.cat(inputs))
        return [(features[index : index + 1], *sizes[index]) for index in range(len(images))]

    @torch.inference_mode()
    def generate(self, image: np.ndarray, *, encoded: tuple | None = None) -> list[dict[str, Any]]:
        """One record per mask, as the stock generator's: segmentation (an HxW bool array), area,
        bbox (XYWH), predicted_iou, point_coords, stability_score, crop_box. `encoded` is this
        image's (features, original size, input size) from `_encode`, when done in a batch."""
        data = self._generate_masks(image, encoded)
        if self.min_mask_region_area > 0:
            data = self._remove_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        records = []
        for index in range(len(data["masks"])):
            mask = data["masks"][index]
            records.append(
                {
                    "segmentation": mask,
                    "area": int(mask.sum()),
                    "bbox": box_xyxy_to_xywh(data["boxes"][index]).tolist(),
                    "predicted_iou": float(data["iou_preds"][index]),
                    "point_coords": [data["points"][index].tolist()],
                    "stability_score": float(data["stability_score"][index]),
                    "crop_box": box_xyxy_to_xywh(data["crop_boxes"][index]).tolist(),
                }
            )
        return records

    def _generate_masks(self, image: np.ndarray, encoded: tuple | None = None) -> MaskData:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        data = _concatenate(
            [
                self._process_crop(image, crop_box, layer_idx, orig_size, encoded)
                for crop_box, layer_idx in zip(crop_boxes, layer_idxs, strict=True)
            ]
        )
        if len(crop_boxes) > 1 and len(data["boxes"]):
            # The same object found in several crops: prefer the mask from the smaller crop.
            keep = nms(data["boxes"], 1 / box_area(data["crop_boxes"]), self.crop_nms_thresh)
            data.filter(keep)
        data.to_numpy()
        return data

    def _process_crop(self, image, crop_box, crop_layer_idx, orig_size, encoded: tuple | None = None) -> MaskData:
        x0, y0, x1, y1 = crop_box
        cropped = image[y0:y1, x0:x1, :]
        cropped_size = cropped.shape[:2]
        if encoded is None:
            self.predictor.set_image(cropped)
        else:  # the whole image, encoded in a batch: what set_torch_image would have stored
            features, original_size, input_size = encoded
            self.predictor.reset_image()
            self.predictor.features, self.predictor.original_size, self.predictor.input_size = (
                features,
                original_size,
                input_size,
            )
            self.predictor.is_image_set = True
        decoder = PromptDecoder(self.predictor.model, self.predictor.features)
        points_for_image = self.point_grids[crop_layer_idx] * np.array(cropped_size)[None, ::-1]
        batches = []
        for start in range(0, len(points_for_image), self.points_per_batch):
            batch = points_for_image[start : start + self.points_per_batch]
            batches.append(self._process_batch(batch, cropped_size, crop_box, orig_size, decoder))
        data = _concatenate(batches)  # once: MaskData.cat per batch copies everything so far, every time
        if not len(data["boxes"]):
            self.predictor.reset_image()
            return _empty(orig_size)
        data.filter(nms(data["boxes"], data["iou_preds"], self.box_nms_thresh))
        # Full-resolution masks again for the survivors only: the same low-res logits, the same upsampling.
        masks = self._upsample(data["low_res"], self.predictor.input_size, self.predictor.original_size)
        data["masks"] = uncrop_masks(masks > self.predictor.model.mask_threshold, crop_box, *orig_size)
        del data["low_res"]
        self.predictor.reset_image()
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor([crop_box for _ in range(len(data["boxes"]))])
        return data

    def _process_batch(self, points, im_size, crop_box, orig_size, decoder: PromptDecoder) -> MaskData:
        orig_h, orig_w = orig_size
        predictor, model = self.predictor, self.predictor.model
        transformed = predictor.transform.apply_coords(points, im_size)
        in_points = torch.as_tensor(transformed, device=predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        sparse, _ = model.prompt_encoder(points=(in_points[:, None, :], in_labels[:, None]), boxes=None, masks=None)
        # Masks come back only for prompts with an output over the IoU threshold (the stock
        # generator computes all, then drops those below it); candidates stay in the stock order.
        iou_preds, rows, low_res = decoder(sparse, self.pred_iou_thresh)
        iou_preds = iou_preds[rows]
        keep = (
            iou_preds > self.pred_iou_thresh
            if self.pred_iou_thresh > 0.0
            else torch.ones_like(iou_preds, dtype=torch.bool)
        )
        low_res, iou_preds = low_res[keep], iou_preds[keep]
        point_rows = torch.as_tensor(points)[rows.cpu()][:, None].expand(-1, keep.shape[1], -1)[keep.cpu()]
        masks = self._upsample(low_res, predictor.input_size, predictor.original_size)
        data = MaskData(low_res=low_res, iou_preds=iou_preds, points=point_rows)
        # Stability and boxes need the full-resolution masks; they are dropped after this batch
        # (the survivors of NMS are upsampled again) instead of piling up, or being run-length encoded.
        data["stability_score"] = calculate_stability_score(masks, model.mask_threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            keep = data["stability_score"] >= self.stability_score_thresh
            data.filter(keep)
            masks = masks[keep]
        data["boxes"] = batched_mask_to_box(masks > model.mask_threshold)
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if not torch.all(keep):
            data.filter(keep)
        return data

    def _upsample(self, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """Sam.postprocess_masks, without its second resize when the input already has the original size.

        Bilinear resizing to the same size reproduces every value (tested), and the SAM copy of any
        image with a longest side of at least SAM_MAX_SIDE has exactly that size.
        """
        side = self.predictor.model.image_encoder.img_size
        masks = F.interpolate(low_res[:, None], (side, side), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        if tuple(input_size) != tuple(original_size):
            masks = F.interpolate(masks, original_size, mode="bilinear", align_corners=False)
        return masks[:, 0]

    @staticmethod
    def _remove_small_regions(data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """The stock clean-up (holes, then islands, then NMS preferring untouched masks), on masks directly."""
        if len(data["masks"]) == 0:
            return data
        cleaned, scores = [], []
        for raw in data["masks"]:
            filled, changed_holes = remove_small_regions(raw, min_area, mode="holes")
            mask, changed_islands = remove_small_regions(filled, min_area, mode="islands")
            cleaned.append(torch.as_tensor(mask).unsqueeze(0))
            scores.append(float(not (changed_holes or changed_islands)))
        masks = torch.cat(cleaned, dim=0)
        boxes = batched_mask_to_box(masks)
        keep = nms(boxes, torch.as_tensor(scores), nms_thresh)
        for index in keep:
            if scores[index] == 0.0:
                data["masks"][index] = masks[index].numpy()
                data["boxes"][index] = boxes[index].numpy()
        data.filter(keep)
        return data


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes that survive non-maximum suppression, all in one category.

    Categories and scores live on the boxes' device: segment_anything 1.0 passes
    `torch.zeros(len(boxes))` (always on the CPU), which fails when the boxes are on CUDA; upstream
    fixed this after the release.
    """
    boxes = boxes.float()
    return batched_nms(boxes, scores.to(boxes.device), torch.zeros_like(boxes[:, 0]), iou_threshold=iou_threshold)


def _concatenate(parts: list[MaskData]) -> MaskData:
    """MaskData.cat copies everything gathered so far at every call; this joins once."""
    columns = [dict(part.items()) for part in parts]
    return MaskData(**{key: torch.cat([column[key] for column in columns]) for key in columns[0]})


def _empty(orig_size) -> MaskData:
    h, w = orig_size
    return MaskData(
        masks=torch.zeros((0, h, w), dtype=torch.bool),
        iou_preds=torch.zeros(0),
        points=torch.zeros((0, 2), dtype=torch.float64),
        stability_score=torch.zeros(0),
        boxes=torch.zeros((0, 4)),
        crop_boxes=torch.zeros((0, 4)),
    )
