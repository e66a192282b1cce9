"""The strided 1x1 convolution that avoids oneDNN's heap corruption (see distilnas.ops.conv)."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from distilnas.ops.conv import PointwiseConv2d, conv2d


@pytest.mark.parametrize("stride,size", [(2, 16), (2, 15), (3, 7), ((2, 1), 9)])
def test_matches_the_strided_convolution(stride, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(8, 4, 1, 1, generator=g), torch.randn(8, generator=g)
    ours, ref = conv2d(x, w, b, stride, 0), F.conv2d(x, w, b, stride, 0)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref)


def test_other_convolutions_are_untouched():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 4, 9, 9, generator=g), torch.randn(8, 4, 3, 3, generator=g)
    torch.testing.assert_close(conv2d(x, w, None, 2, 1), F.conv2d(x, w, None, 2, 1))
    w1 = torch.randn(8, 4, 1, 1, generator=g)
    torch.testing.assert_close(conv2d(x, w1, None, 2, 1), F.conv2d(x, w1, None, 2, 1))  # padded: as is


def test_pointwise_module_keeps_the_conv_state_dict():
    m = PointwiseConv2d(4, 8, 1, 2, 0, bias=False)
    assert set(m.state_dict()) == {"weight"} and isinstance(m, torch.nn.Conv2d)


def test_channels_last_backward_survives_many_steps():
    """The pattern that crashed the ResNet-space search (ic 4, oc 8, 1x1 stride 2, channels-last, batch 32)
    runs in a child process, so a corrupted heap fails this test instead of killing the suite."""
    code = textwrap.dedent("""
        import torch
        from distilnas.ops.conv import PointwiseConv2d
        for c_in in (2, 4):
            m = PointwiseConv2d(c_in, 8, 1, 2, 0, bias=False).to(memory_format=torch.channels_last)
            x = torch.randn(32, c_in, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
            for _ in range(40):
                m(x).sum().backward()
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]
