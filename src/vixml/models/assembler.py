"""The one sequence assembler: a segment list -> ``inputs_embeds``, attention mask and last-token index.

ViXML feeds every backbone embeddings, not token ids, because projected images enter as extra tokens
(docs/method.md 2-3). Encoders use the segments ``("{images}", "{text}")`` (images first; BERT's [CLS] and
[SEP] stay inside ``{text}``); decoders use the prompt ``"This product text" ⊕ {text} ⊕ "and its image" ⊕
{images} ⊕ {eos}``, without ``{images}`` and the literal before it for items without images (the rule of
``ModelConfig.prompt_segments``). Every layout is built here, from its segment list; there is no second path.

Segments:
    literal text: tokenised ONCE without special tokens and embedded with the model's own input embeddings.
        Segments are tokenised independently, so a segment boundary is always a token boundary (write
        ``"This product text:"`` rather than relying on a space to merge with the text).
    ``{text}``: the item's token ids and mask, padded on either side (the cache's or the tokenizer's side).
    ``{images}``: image token embeddings (B, N, H) and their mask (B, N); a missing image is a masked slot.
    ``{eos}``: the architecture's EOS token.

Masked slots (text padding, missing images) are, by default, COMPACTED out of the real sequence: each row
becomes one contiguous run of real tokens followed (right padding) or preceded (left padding) by every
masked slot. Causal attention and last-token pooling rely on that contiguity, and a model given arange
position ids then sees the real tokens at the positions it would see without any masked slot. Encoders
whose position ids are computed from the mask may keep masked slots in place (``compact=False``), which
skips the gather. The compaction is a vectorised stable partition (cumulative sums and one gather, no loop
over rows and no host synchronisation); the width stays the sum of the segment widths. Missing images
are therefore compacted out like padding, never kept masked in place inside a decoder's prompt, and a row
whose images are ALL missing also loses the caption before ``{images}`` (``image_companions``), so that it
is encoded exactly as a text-only item, whatever the rest of its batch carries.

Decoders whose tokenizer starts every text with a BOS token (Llama, Gemma) get that BOS once at the start
of the sequence (``bos_token_id``); the BOS the tokenizer put at the head of ``{text}`` is masked out, so it
does not sit in the middle of the prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vixml.config import PROMPT_PLACEHOLDERS
from vixml.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "TEXT",
    "IMAGES",
    "EOS",
    "PLACEHOLDERS",
    "ENCODER_SEGMENTS",
    "Assembled",
    "SequenceAssembler",
    "IMAGE_SLOT_ID",
    "default_segments",
    "prompt_assemblers",
]

PLACEHOLDERS: tuple[str, ...] = PROMPT_PLACEHOLDERS
TEXT, IMAGES, EOS = PLACEHOLDERS  # "{text}", "{images}", "{eos}": the placeholders model.prompt accepts
ENCODER_SEGMENTS: tuple[str, ...] = (IMAGES, TEXT)
"""The encoder layout of docs/method.md 3: image tokens before the text tokens."""

IMAGE_SLOT_ID = -1
"""Stands for an image slot in :meth:`SequenceAssembler.assemble_ids` (image j of a row is ``-1 - j``)."""


@dataclass(frozen=True)
class Assembled:
    """One assembled batch.

    Attributes:
        inputs_embeds: (B, S, H) token embeddings in the embedding layer's dtype (ids: (B, S) int64 from
            :meth:`SequenceAssembler.assemble_ids`, image slot j as ``-1 - j``).
        attention_mask: (B, S) int64, 1 for real tokens.
        last_index: (B,) int64 position of each row's last real token (0 for a row without any).
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    last_index: torch.Tensor


class SequenceAssembler:
    """Builds model inputs from a segment list (see the module docstring).

    Args:
        segments: literal strings and placeholders (``{text}`` exactly once, ``{images}`` at most once).
        tokenizer: the model's tokenizer (literal segments and ``{eos}`` are tokenised with it, once).
        padding_side: where masked slots go when compacting: ``"right"`` (after the real tokens) or ``"left"``.
        compact: move masked slots out of the real sequence (True), or keep them in place (False: plain
            concatenation, for encoders whose position ids come from the mask).
        eos_token: the token ``{eos}`` stands for; None = the tokenizer's EOS token.
        bos_token_id: put this token first and mask a leading one out of ``{text}``; None = no BOS handling.
        image_companions: indices of literal segments that only make sense with images (the ``"and its
            image"`` before ``{images}``): masked out in rows whose images are all missing, so that such a row
            is encoded exactly as by the text-only segment list.
    """

    def __init__(
        self,
        segments: Sequence[str],
        tokenizer: Any,
        *,
        padding_side: Literal["left", "right"] = "right",
        compact: bool = True,
        eos_token: str | None = None,
        bos_token_id: int | None = None,
        image_companions: Sequence[int] = (),
    ):
        segments = tuple(segments)
        problems = [f"unknown placeholder {s!r}" for s in segments if _is_placeholder(s) and s not in PLACEHOLDERS]
        if segments.count(TEXT) != 1:
            problems.append(f"'{TEXT}' must appear exactly once")
        if segments.count(IMAGES) > 1:
            problems.append(f"'{IMAGES}' may appear at most once")
        if any(not 0 <= i < len(segments) or _is_placeholder(segments[i]) for i in image_companions):
            problems.append(f"image_companions {list(image_companions)} must index literal segments")
        if padding_side not in ("left", "right"):
            problems.append(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if problems:
            raise ConfigError(
                f"bad segment list {list(segments)}: {'; '.join(problems)} (valid placeholders: {PLACEHOLDERS})"
            )
        self.segments = segments
        self.padding_side = padding_side
        self.compact = bool(compact)
        self.bos_token_id = bos_token_id
        self.image_companions = frozenset(image_companions)
        self.eos_token_id = _eos_id(tokenizer, eos_token) if EOS in segments else None
        self._literals: dict[int, list[int]] = {}
        for i, seg in enumerate(segments):
            if not _is_placeholder(seg):
                ids = tokenizer(seg, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ConfigError(f"prompt segment {seg!r} tokenises to nothing; remove it")
                self._literals[i] = list(ids)

    @property
    def has_images(self) -> bool:
        return IMAGES in self.segments

    def assemble(
        self,
        embed: Callable[[torch.Tensor], torch.Tensor],
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        image_embeds: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
    ) -> Assembled:
        """Assemble a batch of embeddings.

        Args:
            embed: the model's input-embedding module, (B, L) ids -> (B, L, H); called ONCE, on every token
                of every non-image segment at the same time.
            text_ids: (B, T) token ids of the items' texts, on the embedding's device.
            text_mask: (B, T) their mask (padding on either side).
            image_embeds: (B, N, H) image tokens; needed when the segments hold ``{images}``, else ignored.
            image_mask: (B, N), 0 for a missing image; None = all present.

        Returns:
            The (B, S, H) embeddings, (B, S) mask and (B,) last-token index.
        """
        import torch

        blocks, masks, image_block = self._blocks(text_ids, text_mask, image_embeds, image_mask)
        token_ids = [b for i, b in enumerate(blocks) if i != image_block]
        token_embeds = embed(torch.cat(token_ids, dim=1) if len(token_ids) > 1 else token_ids[0])
        parts = list(token_embeds.split([b.shape[1] for b in token_ids], dim=1))
        if image_block is not None:
            if image_embeds.dim() != 3 or image_embeds.shape[-1] != token_embeds.shape[-1]:
                raise ConfigError(
                    f"image tokens must be (B, N, {token_embeds.shape[-1]}) like the token embeddings; got "
                    f"{tuple(image_embeds.shape)}: project them to the hidden size first"
                )
            parts.insert(image_block, image_embeds.to(device=token_embeds.device, dtype=token_embeds.dtype))
        embeds = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        mask = torch.cat(masks, dim=1) if len(masks) > 1 else masks[0]
        return self._finish(embeds, mask)

    def assemble_ids(
        self, text_ids: torch.Tensor, text_mask: torch.Tensor, image_mask: torch.Tensor | None = None
    ) -> Assembled:
        """The same layout as token ids: (B, S) ids in ``inputs_embeds``, image slot j as ``-1 - j``.

        For inspection and tests (``tokenizer.decode`` the real positions to read a row's prompt).
        """
        import torch

        image_embeds = None
        if self.has_images:
            if image_mask is None:
                raise ConfigError(f"these segments hold '{IMAGES}': give image_mask (B, N)")
            n = image_mask.shape[1]
            image_embeds = (IMAGE_SLOT_ID - torch.arange(n, device=text_ids.device)).expand(text_ids.shape[0], n)
        blocks, masks, image_block = self._blocks(text_ids, text_mask, image_embeds, image_mask)
        if image_block is not None:
            blocks[image_block] = image_embeds
        return self._finish(torch.cat(blocks, dim=1).unsqueeze(-1), torch.cat(masks, dim=1), squeeze=True)

    # ------------------------------------------------------------------------------------------------
    def _blocks(self, text_ids, text_mask, image_embeds, image_mask):
        """Per-segment (B, L) id blocks and masks in segment order; the image block's ids are None."""
        import torch

        if text_ids.dim() != 2 or text_mask.shape != text_ids.shape:
            raise ConfigError(
                f"text ids and mask must both be (B, T); got {tuple(text_ids.shape)}, {tuple(text_mask.shape)}"
            )
        batch, device = text_ids.shape[0], text_ids.device
        text_mask = text_mask.to(device=device, dtype=torch.long)
        blocks: list[torch.Tensor | None] = []
        masks: list[torch.Tensor] = []

        def constant(ids: list[int]) -> None:
            blocks.append(torch.tensor(ids, dtype=torch.long, device=device).expand(batch, len(ids)))
            masks.append(torch.ones(batch, len(ids), dtype=torch.long, device=device))

        if self.bos_token_id is not None:
            constant([self.bos_token_id])
            text_mask = _drop_leading(text_ids, text_mask, self.bos_token_id)
        image_block = None
        images = _image_mask(image_embeds, image_mask, batch, device) if self.has_images else None
        for i, seg in enumerate(self.segments):
            if seg == TEXT:
                blocks.append(text_ids.long())
                masks.append(text_mask)
            elif seg == EOS:
                constant([self.eos_token_id])
            elif seg == IMAGES:
                image_block = len(blocks)
                blocks.append(None)
                masks.append(images)
            else:
                constant(self._literals[i])
                if i in self.image_companions:  # a row without any image drops its image caption too
                    masks[-1] = masks[-1] * (images.sum(dim=1, keepdim=True) > 0).long()
        return blocks, masks, image_block

    def _finish(self, embeds: torch.Tensor, mask: torch.Tensor, squeeze: bool = False) -> Assembled:
        """Compact (or not) the concatenated (B, S, H) embeddings and (B, S) mask; find the last real token."""
        import torch

        width = mask.shape[1]
        count = mask.sum(dim=1)  # (B,)
        if self.compact:
            order = _partition_order(mask, self.padding_side)  # (B, S): source slot of each destination slot
            embeds = embeds.gather(1, order.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))
            mask = mask.gather(1, order)
            if self.padding_side == "right":
                last = (count - 1).clamp(min=0)
            else:
                last = torch.where(count > 0, width - 1, 0)
        else:
            positions = torch.arange(width, device=mask.device)
            last = torch.where(mask.bool(), positions, -1).amax(dim=1).clamp(min=0)
        if squeeze:
            embeds = embeds.squeeze(-1)
        return Assembled(embeds, mask, last)


def default_segments(decoder: bool) -> tuple[str, ...]:
    """The paper's layouts: the decoder prompt (``ModelConfig.prompt``'s default) or the encoder's images-first."""
    from vixml.config import ModelConfig

    return ModelConfig().prompt if decoder else ENCODER_SEGMENTS


def prompt_assemblers(
    prompt: Sequence[str], tokenizer: Any, *, keep_caption: bool = False, **options: Any
) -> dict[bool, SequenceAssembler]:
    """Two assemblers for one prompt: ``{True: with images, False: text only}`` by ``ModelConfig.prompt_segments``.

    The literal segments that the text-only rule drops (the ``"and its image"`` caption) become the
    with-image assembler's ``image_companions``, so that a row whose images are all missing is encoded as by
    the text-only list even inside a batch with images; unless ``keep_caption`` (``model.imageless_caption:
    keep``, the reference), where such a row keeps the caption and only its masked image slots are compacted.

    Args:
        prompt: the full segment list (validated as ``model.prompt``).
        tokenizer: the model's tokenizer.
        options: the other :class:`SequenceAssembler` arguments (padding side, compaction, EOS, BOS).
    """
    from vixml.config import ModelConfig

    config = ModelConfig(prompt=tuple(prompt))  # validates the segments (a ConfigError naming model.prompt)
    full, text_only = config.prompt_segments(True), config.prompt_segments(False)
    start = next((i for i, (a, b) in enumerate(zip(full, text_only, strict=False)) if a != b), len(text_only))
    dropped = range(start, start + len(full) - len(text_only))  # what the text-only rule removes
    companions = [] if keep_caption else [i for i in dropped if full[i] != IMAGES]
    return {
        True: SequenceAssembler(full, tokenizer, image_companions=companions, **options),
        False: SequenceAssembler(text_only, tokenizer, **options),
    }


def _is_placeholder(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _eos_id(tokenizer: Any, eos_token: str | None) -> int:
    """Id of ``eos_token`` (falling back to the tokenizer's EOS when the vocabulary lacks it)."""
    if eos_token is not None:
        token_id = tokenizer.convert_tokens_to_ids(eos_token)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            return int(token_id)
    if tokenizer.eos_token_id is None:
        raise ConfigError(
            f"the prompt holds '{EOS}' but the tokenizer has no EOS token"
            + (f" (nor {eos_token!r})" if eos_token else "")
            + "; remove '{eos}' from model.prompt or give the tokenizer an eos_token"
        )
    return int(tokenizer.eos_token_id)


def _image_mask(image_embeds, image_mask, batch: int, device) -> torch.Tensor:
    import torch

    if image_embeds is None:
        raise ConfigError(f"these segments hold '{IMAGES}' but no image tokens were given")
    if image_embeds.shape[0] != batch or image_embeds.dim() not in (2, 3):
        raise ConfigError(f"image tokens must be (B, N, H) with B = {batch}; got {tuple(image_embeds.shape)}")
    shape = tuple(image_embeds.shape[:2])
    if image_mask is None:
        return torch.ones(shape, dtype=torch.long, device=device)
    if tuple(image_mask.shape) != shape:
        raise ConfigError(f"image mask must be {shape}; got {tuple(image_mask.shape)}")
    return image_mask.to(device=device, dtype=torch.long)


def _drop_leading(ids: torch.Tensor, mask: torch.Tensor, token_id: int) -> torch.Tensor:
    """(B, T) mask with each row's first real token masked out where that token is ``token_id``."""
    import torch

    first = mask.argmax(dim=1, keepdim=True)  # first real position (the first maximum)
    hit = (ids.gather(1, first) == token_id) & (mask.gather(1, first) > 0)
    drop = torch.zeros_like(mask).scatter_(1, first, hit.long())
    return mask * (1 - drop)


def _partition_order(mask: torch.Tensor, side: str) -> torch.Tensor:
    """(B, S) mask -> (B, S) source index of each output slot: a stable partition of real and masked slots.

    Real slots keep their relative order and so do masked ones; with ``side="right"`` the real ones come
    first, with ``"left"`` last. Destination positions come from cumulative sums and are inverted by one
    scatter, so the cost is linear in S and nothing waits for the device.
    """
    import torch

    real = mask > 0
    n_real = real.sum(dim=1, keepdim=True)
    width = mask.shape[1]
    real_rank = real.long().cumsum(dim=1) - 1
    pad_rank = (~real).long().cumsum(dim=1) - 1
    if side == "right":
        dest = torch.where(real, real_rank, n_real + pad_rank)
    else:
        dest = torch.where(real, (width - n_real) + real_rank, pad_rank)
    source = torch.arange(width, device=mask.device).expand_as(dest)
    return torch.empty_like(dest).scatter_(1, dest, source)
