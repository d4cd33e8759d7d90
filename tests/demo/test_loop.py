"""The demo trainer's loss for the VAE: a lost joint must cost more than a slightly-off colour."""

from __future__ import annotations

import torch
from brushwork.demo.loop import reconstruction_loss


def _wall() -> torch.Tensor:
    """A 32 px crop of mid-grey bricks with one 2 px dark vertical joint, in [-1, 1]."""
    x = torch.zeros(1, 3, 32, 32)
    x[..., :, 15:17] = -0.8
    return x


def test_pixel_loss_alone_prefers_dropping_a_joint_and_the_edge_term_does_not():
    x = _wall()
    joint_lost = torch.zeros_like(x)  # the blur a small VAE converges to
    colour_off = x + 0.1  # every brick and joint kept, the whole a little lighter
    assert reconstruction_loss(joint_lost, x, edges=0.0) < reconstruction_loss(colour_off, x, edges=0.0)
    assert reconstruction_loss(joint_lost, x, edges=1.0) > reconstruction_loss(colour_off, x, edges=1.0)


def test_a_perfect_reconstruction_costs_nothing_and_edges_are_optional():
    x = _wall()
    assert float(reconstruction_loss(x.clone(), x, edges=1.0)) == 0.0
    shifted = torch.roll(x, 1, dims=-1)
    assert float(reconstruction_loss(shifted, x, edges=0.0)) < float(reconstruction_loss(shifted, x, edges=1.0))


def test_wrapped_batches_run_the_network_as_seamless_tiling_does_and_restore_it():
    """Plan.wrap: a wrapped batch decodes a shifted latent as the shifted picture (circular
    padding, no border to find a layout from); an unwrapped one and the network afterwards do not."""
    from brushwork.demo.architecture import build_vae
    from brushwork.demo.train import wrapped_sometimes

    torch.manual_seed(0)
    vae = build_vae().eval()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 8, 8)

    def shift_error() -> float:
        with torch.no_grad():
            return float((torch.roll(vae.decode(z).sample, 16, dims=-1)
                          - vae.decode(torch.roll(z, 2, dims=-1)).sample).abs().max())

    with wrapped_sometimes(vae, 1.0, gen):
        assert shift_error() < 1e-4
    with wrapped_sometimes(vae, 0.0, gen):
        assert shift_error() > 0.01
    assert shift_error() > 0.01
