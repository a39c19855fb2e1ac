"""Training recipes for the learned stages, one module per network, sharing ``loop.train`` (single process or
DDP under ``torchrun``, AMP on CUDA, gradient accumulation, checkpoints that resume with any process count):

- ``dense``: the dense predictor (DenseViT), optionally from a Sapiens checkpoint (``fica.models.sapiens``);
- ``diffusion``: UV diffusion (UVDiT) by flow matching in a frozen VAE's latent space (+ a tiny VAE for tests);
- ``refiner``: the UV refiner (UVRefiner) — photometric L1, mask, keypoint and UV Laplacian losses;
- ``prior``: the universal prior (CodecPrior) — L1 + SSIM or VGG (``perceptual``) on differentiable splat renders,
  plus the posed geometry where the data has it;
- data sources, all writing the dataset format of ``synthetic.save_dataset``: ``synthetic`` (the generator),
  ``capture`` (multi-view captures in NeRSemble's layout), ``distill`` (a folder of portraits through a pipeline);
- ``tiny``: a tiny complete pipeline repo.

The four network recipes are runnable: ``[torchrun --nproc_per_node N] -m fica.train.<recipe> --out DIR
[--data DIR | --synthetic N] [--steps N] [--tiny]`` (see each module's docstring); so are
``python -m fica.train.capture``, ``python -m fica.train.distill`` and ``python -m fica.train.tiny --out DIR``.
"""
