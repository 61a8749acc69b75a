import hashlib
import os
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.vision.clip import clip_weights, register_model_configs
from search.vision.registry import weights_missing
from search.vision.runtime import ModelUnavailable

SAM_RELEASE = "https://dl.fbaipublicfiles.com/segment_anything/"
# Published checkpoints and their MD5 sums (the file name carries the first six hex digits).
SAM_CHECKPOINTS = {
    "vit_b": ("sam_vit_b_01ec64.pth", "01ec64d29a2fca3f0661936605ae66f8"),
    "vit_l": ("sam_vit_l_0b3195.pth", "0b3195507c641ddb6910d2bb5adee89c"),
    "vit_h": ("sam_vit_h_4b8939.pth", "4b8939a88964f0f4ff5f5b2642c598a6"),
}
CHUNK = 1 << 20
MISSING_BANNER = """
================================================================================================
 The model weights could not be fetched, so photos cannot be recognised yet:
{problems}
 imgsearch starts anyway. Uploads are kept and wait; once the weights are in place (run
 `manage.py fetch_models` when the network allows, or copy the files in), the worker processes
 them by itself. Staff see this on every page until then.
================================================================================================
"""


def unreachable(url: str, timeout: float = 5) -> str | None:
    """Why `url`'s host cannot be reached (one TCP connection), or None. Offline, this fails in
    milliseconds, where a download library would retry with backoff for most of a minute."""
    parsed = urlparse(url)
    try:
        socket.create_connection(
            (parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout=timeout
        ).close()
    except OSError as error:
        return f"{parsed.hostname} is unreachable ({error})"
    return None


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, *, md5: str, timeout: float = 30) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                digest.update(block)
                bar.update(len(block))
    if digest.hexdigest() != md5:
        partial.unlink(missing_ok=True)
        raise CommandError(
            f"{url} arrived corrupted (MD5 {digest.hexdigest()}, expected {md5}); run the command again."
        )
    os.replace(partial, target)


class Command(BaseCommand):
    help = "Download the configured CLIP weights and SAM checkpoint into MODEL_CACHE_DIR, with checksums."

    def add_arguments(self, parser):
        parser.add_argument("--skip-clip", action="store_true", help="Do not fetch the CLIP weights.")
        parser.add_argument("--skip-sam", action="store_true", help="Do not fetch the SAM checkpoint.")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Fetch only what is missing (no checksum pass over present files), and when "
            "that fails, say so and exit 0 so the app still starts (`make run` does this).",
        )

    def handle(self, *args, skip_clip: bool, skip_sam: bool, if_missing: bool, **options):
        if if_missing:
            missing = weights_missing()
            if not missing:
                self.stdout.write("Model weights: all in place.")
                return
            skip_clip, skip_sam = skip_clip or "clip" not in missing, skip_sam or "sam" not in missing
            self.stdout.write("Model weights missing: fetching them now (once; they are kept in MODEL_CACHE_DIR).")
        problems = []
        if if_missing and "objectness" in missing:  # trained here, not downloaded
            problems.append(missing["objectness"])
        if not skip_clip:
            problems += self.fetch_clip()
        if not skip_sam:
            problems += self.fetch_sam()
        if problems and if_missing:
            self.stderr.write(self.style.WARNING(MISSING_BANNER.format(problems="\n".join(problems))))
        elif problems:
            raise CommandError("\n".join(problems))

    def fetch_clip(self) -> list[str]:
        if settings.CLIP_CHECKPOINT or not settings.CLIP_PRETRAINED:
            self.stdout.write(
                f"CLIP: {settings.CLIP_MODEL} uses {settings.CLIP_CHECKPOINT or 'random weights'}; nothing to fetch."
            )
            return []
        register_model_configs()
        cache = settings.MODEL_CACHE_DIR / "clip"
        import open_clip

        cfg = open_clip.get_pretrained_cfg(settings.CLIP_MODEL, settings.CLIP_PRETRAINED) or {}
        source = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if cfg.get("hf_hub") else cfg.get("url", "")
        problem = unreachable(source) if source else None
        if problem:
            return [
                f"CLIP: {settings.CLIP_MODEL}/{settings.CLIP_PRETRAINED} cannot be downloaded: {problem}. "
                f"Without internet access, fetch it on another machine and copy {cache} here, "
                f"or set CLIP_CHECKPOINT to a local weights file."
            ]
        try:
            weights = clip_weights(
                model_name=settings.CLIP_MODEL,
                pretrained=settings.CLIP_PRETRAINED,
                checkpoint="",
                cache_dir=cache,
                download=True,
            )
        except ModelUnavailable as error:
            return [f"CLIP: {error}"]
        except Exception as error:
            return [
                f"CLIP: downloading {settings.CLIP_MODEL}/{settings.CLIP_PRETRAINED} failed ({error}). "
                f"Without internet access, fetch it on another machine and copy {cache} here, "
                f"or set CLIP_CHECKPOINT to a local weights file."
            ]
        self.stdout.write(f"CLIP: {settings.CLIP_MODEL}/{settings.CLIP_PRETRAINED} ready at {weights.path}")
        return []

    def fetch_sam(self) -> list[str]:
        model_type = settings.SAM_MODEL_TYPE
        if model_type not in SAM_CHECKPOINTS:
            self.stdout.write(f"SAM: {model_type} has no published checkpoint; nothing to fetch.")
            return []
        name, md5 = SAM_CHECKPOINTS[model_type]
        target = Path(settings.SAM_CHECKPOINT or settings.MODEL_CACHE_DIR / name)
        if target.is_file():
            if md5_of(target) == md5:
                self.stdout.write(f"SAM: {target} is present and its checksum matches.")
                return []
            self.stdout.write(f"SAM: {target} has the wrong checksum; downloading it again.")
        problem = unreachable(SAM_RELEASE)
        if problem:
            return [
                f"SAM: {SAM_RELEASE + name} cannot be downloaded: {problem}. Without internet access, download it "
                f"elsewhere and put it at {target} (or set SAM_CHECKPOINT to where it is)."
            ]
        try:
            download(SAM_RELEASE + name, target, md5=md5)
        except CommandError as error:
            return [f"SAM: {error}"]
        except OSError as error:
            return [
                f"SAM: downloading {SAM_RELEASE + name} failed ({error}). Without internet access, download it "
                f"elsewhere and put it at {target} (or set SAM_CHECKPOINT to where it is)."
            ]
        self.stdout.write(f"SAM: {target} downloaded and verified.")
        return []
