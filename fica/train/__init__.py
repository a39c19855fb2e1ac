"""Training recipes for the learned stages, one module per network, sharing ``loop.train``:

- ``dense``: the dense predictor (DenseViT) — L1 uv/xyz, cosine + L1 normals, mask BCE;
- ``diffusion``: UV diffusion (UVDiT) by flow matching in a frozen VAE's latent space (+ a tiny VAE for tests);
- ``refiner``: the UV refiner (UVRefiner) — photometric L1, mask, keypoint and UV Laplacian losses;
- ``prior``: the universal prior (CodecPrior) — L1 + structure term on differentiable splat renders;
- ``synthetic``: the data generator and the on-disk dataset format; ``tiny``: a tiny complete pipeline repo.

The four network recipes are runnable: ``python -m fica.train.<recipe> --out DIR [--data DIR | --synthetic N]
[--steps N] [--tiny]`` (diffusion and refiner take more options, see their docstrings); so is
``python -m fica.train.tiny --out DIR``.
"""
