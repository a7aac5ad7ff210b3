"""The UNet replayed as CUDA graphs: one capture per input shape, then one launch per step.

A UNet forward is about a thousand small kernels; at batch 1 a big GPU spends more time
launching them than computing, so diffusers' pipeline is launch-bound there. A CUDA graph
records the launches once (per shape) and replays them as one. The inputs are copied into
static buffers before each replay; the output buffer is copied out, because the next replay
overwrites it.
"""

from __future__ import annotations

import weakref

import torch
from diffusers import UNet2DConditionModel

Key = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]


class GraphedUNet:
    """(x, t, context) -> the UNet's output, through a CUDA graph captured for those shapes."""

    def __init__(self, unet: UNet2DConditionModel):
        self.unet = unet
        self.graphs: dict[
            Key, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
        ] = {}

    def _capture(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> None:
        static_x, static_c = x.clone(), context.clone()
        static_t = t.to(x.device, torch.float32).clone()
        # warm-up on a side stream (cuDNN picks its algorithms, lazy buffers get allocated), as
        # torch.cuda.graphs asks, then record
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.unet(static_x, static_t, encoder_hidden_states=static_c)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.unet(static_x, static_t, encoder_hidden_states=static_c).sample
        self.graphs[(tuple(x.shape), tuple(context.shape), x.dtype)] = (
            graph,
            static_x,
            static_t,
            static_c,
            static_out,
        )

    def __call__(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), tuple(context.shape), x.dtype)
        if key not in self.graphs:
            self._capture(x, t, context)
        graph, static_x, static_t, static_c, static_out = self.graphs[key]
        static_x.copy_(x)
        static_t.copy_(t)
        static_c.copy_(context)
        graph.replay()
        return static_out.clone()


_GRAPHED: weakref.WeakKeyDictionary[UNet2DConditionModel, GraphedUNet] = weakref.WeakKeyDictionary()


def graphed(unet: UNet2DConditionModel) -> GraphedUNet:
    """The UNet's graph cache, kept as long as the UNet lives (captures are reused across batches)."""
    if unet not in _GRAPHED:
        _GRAPHED[unet] = GraphedUNet(unet)
    return _GRAPHED[unet]
