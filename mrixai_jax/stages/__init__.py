"""The study's stages, one module each, all with `run(config, workdir) -> summary dict`.

  data → diffusion → sample → heads (per `heads.kind`) → explain (per `heads.kind`) → evaluate → report

Each reads what earlier stages wrote and writes its own outputs at the paths `mrixai_jax.workdir`
defines; `mrixai_jax.study` is the ordered list with completion markers.
"""
