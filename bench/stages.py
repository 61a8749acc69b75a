"""Per-stage timing for the ingestion benchmark, from module hooks (no code under test is patched)."""

import functools
import time
from collections import defaultdict
from contextlib import contextmanager


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._handles = []

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def hook(self, name: str, module) -> None:
        """Add the time spent in `module`'s forward, wherever it is called from, to stage `name`."""
        starts = []
        self._handles.append(module.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter())))
        self._handles.append(
            module.register_forward_hook(
                lambda *_: self.seconds.__setitem__(name, self.seconds[name] + time.perf_counter() - starts.pop())
            )
        )

    def time_calls(self, name: str, owner, attribute: str) -> None:
        """Add the time spent in calls of `owner.attribute` (a class or an object) to stage `name`.

        For work that is not a module forward (our PromptDecoder); the attribute is put back by unhook.
        """
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        self._handles.append(_Restore(owner, attribute, original))

    def hook_sam(self, sam) -> None:
        self.hook("SAM encoder", sam.image_encoder)
        self.hook("SAM mask decoding", sam.mask_decoder)

    def unhook(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def breakdown(self, *, total: float | None = None, rest: str = "") -> dict[str, float]:
        """Stage seconds; with `total`, what no stage covers is reported as `rest`."""
        stages = dict(self.seconds)
        if "segmentation (total)" in stages:
            segmentation = stages.pop("segmentation (total)")
            stages["SAM post-processing"] = (
                segmentation - stages.get("SAM encoder", 0) - stages.get("SAM mask decoding", 0)
            )
        if total is not None:
            stages[rest] = total - sum(stages.values())
        return stages


class _Restore:
    def __init__(self, owner, attribute: str, original):
        self.owner, self.attribute, self.original = owner, attribute, original

    def remove(self) -> None:
        setattr(self.owner, self.attribute, self.original)
