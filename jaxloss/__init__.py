"""jaxloss: loss functions for JAX and Flax.

Every loss is a pure function (jit-able, vmap-able, differentiable) with one
reduction contract (:func:`jaxloss.reduce`) and trace-time shape checks. The
public API is flat: ``import jaxloss as jl; jl.<loss>``; each family's losses
are also in ``jaxloss.<family>`` (the families are listed once, in
``jaxloss/_core/families.py``). Sharded versions of the contrastive losses
live in :mod:`jaxloss.distributed`, Flax NNX modules in :mod:`jaxloss.nn`,
optax training helpers in :mod:`jaxloss.train`.
"""

from jaxloss import classification as classification
from jaxloss import contrastive as contrastive
from jaxloss import detection as detection
from jaxloss import distillation as distillation
from jaxloss import distributed as distributed
from jaxloss import divergence as divergence
from jaxloss import generative as generative
from jaxloss import image as image
from jaxloss import metric_learning as metric_learning
from jaxloss import nn as nn
from jaxloss import preference as preference
from jaxloss import ranking as ranking
from jaxloss import regression as regression
from jaxloss import regularization as regularization
from jaxloss import rl as rl
from jaxloss import segmentation as segmentation
from jaxloss import self_supervised as self_supervised
from jaxloss import semi_supervised as semi_supervised
from jaxloss import sequence as sequence
from jaxloss import train as train
from jaxloss._core.loss import loss
from jaxloss._core.reduction import REDUCTIONS, reduce
from jaxloss._core.value_checks import checked
from jaxloss.classification import (
  binary_cross_entropy,
  class_weights_from_counts,
  hinge_loss,
  make_fenchel_young_loss,
  multi_margin_loss,
  multiclass_hinge_loss,
  multiclass_perceptron_loss,
  multiclass_sparsemax_loss,
  multilabel_margin_loss,
  multilabel_soft_margin_loss,
  nll_loss,
  perceptron_loss,
  perplexity,
  poly1_focal_loss,
  poly_loss_cross_entropy,
  pos_weight_from_counts,
  safe_softmax_cross_entropy,
  sigmoid_binary_cross_entropy,
  sigmoid_focal_loss,
  smooth_labels,
  soft_margin_loss,
  softmax_cross_entropy,
  softmax_cross_entropy_with_integer_labels,
  softmax_focal_loss,
  sparsemax_loss,
  squared_hinge_loss,
)
from jaxloss.contrastive import (
  clip_loss,
  infonce_loss,
  ntxent,
  siglip_loss,
  supervised_contrastive_loss,
)
from jaxloss.detection import (
  box_iou_loss,
  complete_box_iou_loss,
  distance_box_iou_loss,
  generalized_box_iou_loss,
)
from jaxloss.distillation import (
  generalized_jsd_loss,
  kd_loss,
  skew_kl_loss,
  sparse_kd_loss,
  total_variation_distance,
)
from jaxloss.divergence import (
  convex_kl_divergence,
  gaussian_kl_divergence,
  generalized_kl_divergence,
  js_divergence,
  kl_divergence,
  kl_divergence_with_log_targets,
)
from jaxloss.generative import (
  cycle_consistency_loss,
  gan_discriminator_loss,
  gan_generator_loss,
  gradient_penalty,
  r1_penalty,
  vae_loss,
)
from jaxloss.image import (
  ms_ssim_loss,
  perceptual_loss,
  ssim_loss,
  total_variation_loss,
)
from jaxloss.metric_learning import (
  alignment_loss,
  angular_loss,
  arcface_loss,
  batch_all_triplet_loss,
  batch_hard_triplet_loss,
  contrastive_loss,
  cosface_loss,
  ge2e_loss,
  npair_loss,
  proxy_nca_loss,
  semi_hard_triplet_loss,
  triplet_margin_loss,
  uniformity_loss,
)
from jaxloss.preference import (
  cpo_loss,
  dpo_implicit_rewards,
  dpo_loss,
  group_normalized_advantages,
  grpo_loss,
  kl_estimate,
  kto_loss,
  orpo_loss,
  simpo_loss,
)
from jaxloss.ranking import (
  listmle_loss,
  margin_ranking_loss,
  multiple_negatives_ranking_loss,
  pairwise_hinge_loss,
  pairwise_logistic_loss,
  pairwise_soft_zero_one_loss,
  ranking_softmax_loss,
)
from jaxloss.regression import (
  absolute_error,
  absolute_percentage_error,
  asymmetric_huber_loss,
  cosine_distance,
  cosine_embedding_loss,
  cosine_similarity,
  gaussian_nll_loss,
  hinge_embedding_loss,
  huber_loss,
  l2_loss,
  log_cosh,
  normalized_mean_absolute_error,
  poisson_nll_loss,
  quantile_loss,
  root_mean_squared_error,
  smooth_l1_loss,
  squared_error,
  squared_log_error,
)
from jaxloss.regularization import (
  elastic_net_regularization,
  l1_regularization,
  l2_regularization,
)
from jaxloss.rl import (
  entropy_loss,
  policy_gradient_loss,
  ppo_clip_loss,
  ppo_value_loss,
  q_learning_loss,
  td_loss,
)
from jaxloss.segmentation import (
  binary_dice_loss,
  combo_loss,
  dice_loss,
  focal_tversky_loss,
  jaccard_loss,
  lovasz_softmax_loss,
  multiclass_generalized_dice_loss,
  tversky_loss,
)
from jaxloss.self_supervised import (
  barlow_twins_loss,
  byol_loss,
  dino_loss,
  koleo_loss,
  simsiam_loss,
  swav_loss,
  vicreg_loss,
)
from jaxloss.semi_supervised import (
  entropy_minimization_loss,
  fixmatch_loss,
  guess_labels,
  mean_teacher_consistency_loss,
  mixmatch_loss,
  pseudo_label_loss,
  sharpen,
  training_signal_annealing_mask,
  uda_consistency_loss,
)
from jaxloss.sequence import (
  ctc_loss,
  ctc_loss_with_forward_probs,
  linear_cross_entropy,
  linear_log_probs,
)

__version__ = "0.1.0"

__all__ = [
  "REDUCTIONS",
  "absolute_error",
  "absolute_percentage_error",
  "alignment_loss",
  "angular_loss",
  "arcface_loss",
  "asymmetric_huber_loss",
  "barlow_twins_loss",
  "batch_all_triplet_loss",
  "batch_hard_triplet_loss",
  "binary_cross_entropy",
  "binary_dice_loss",
  "box_iou_loss",
  "byol_loss",
  "checked",
  "class_weights_from_counts",
  "clip_loss",
  "combo_loss",
  "complete_box_iou_loss",
  "contrastive_loss",
  "convex_kl_divergence",
  "cosface_loss",
  "cosine_distance",
  "cosine_embedding_loss",
  "cosine_similarity",
  "cpo_loss",
  "ctc_loss",
  "ctc_loss_with_forward_probs",
  "cycle_consistency_loss",
  "dice_loss",
  "dino_loss",
  "distance_box_iou_loss",
  "dpo_implicit_rewards",
  "dpo_loss",
  "elastic_net_regularization",
  "entropy_loss",
  "entropy_minimization_loss",
  "fixmatch_loss",
  "focal_tversky_loss",
  "gan_discriminator_loss",
  "gan_generator_loss",
  "gaussian_kl_divergence",
  "gaussian_nll_loss",
  "ge2e_loss",
  "generalized_box_iou_loss",
  "generalized_jsd_loss",
  "generalized_kl_divergence",
  "gradient_penalty",
  "group_normalized_advantages",
  "grpo_loss",
  "guess_labels",
  "hinge_embedding_loss",
  "hinge_loss",
  "huber_loss",
  "infonce_loss",
  "jaccard_loss",
  "js_divergence",
  "kd_loss",
  "kl_divergence",
  "kl_divergence_with_log_targets",
  "kl_estimate",
  "koleo_loss",
  "kto_loss",
  "l1_regularization",
  "l2_loss",
  "l2_regularization",
  "linear_cross_entropy",
  "linear_log_probs",
  "listmle_loss",
  "log_cosh",
  "loss",
  "lovasz_softmax_loss",
  "make_fenchel_young_loss",
  "margin_ranking_loss",
  "mean_teacher_consistency_loss",
  "mixmatch_loss",
  "ms_ssim_loss",
  "multi_margin_loss",
  "multiclass_generalized_dice_loss",
  "multiclass_hinge_loss",
  "multiclass_perceptron_loss",
  "multiclass_sparsemax_loss",
  "multilabel_margin_loss",
  "multilabel_soft_margin_loss",
  "multiple_negatives_ranking_loss",
  "nll_loss",
  "normalized_mean_absolute_error",
  "npair_loss",
  "ntxent",
  "orpo_loss",
  "pairwise_hinge_loss",
  "pairwise_logistic_loss",
  "pairwise_soft_zero_one_loss",
  "perceptron_loss",
  "perceptual_loss",
  "perplexity",
  "poisson_nll_loss",
  "policy_gradient_loss",
  "poly1_focal_loss",
  "poly_loss_cross_entropy",
  "pos_weight_from_counts",
  "ppo_clip_loss",
  "ppo_value_loss",
  "proxy_nca_loss",
  "pseudo_label_loss",
  "q_learning_loss",
  "quantile_loss",
  "r1_penalty",
  "ranking_softmax_loss",
  "reduce",
  "root_mean_squared_error",
  "safe_softmax_cross_entropy",
  "semi_hard_triplet_loss",
  "sharpen",
  "siglip_loss",
  "sigmoid_binary_cross_entropy",
  "sigmoid_focal_loss",
  "simpo_loss",
  "simsiam_loss",
  "skew_kl_loss",
  "smooth_l1_loss",
  "smooth_labels",
  "soft_margin_loss",
  "softmax_cross_entropy",
  "softmax_cross_entropy_with_integer_labels",
  "softmax_focal_loss",
  "sparse_kd_loss",
  "sparsemax_loss",
  "squared_error",
  "squared_hinge_loss",
  "squared_log_error",
  "ssim_loss",
  "supervised_contrastive_loss",
  "swav_loss",
  "td_loss",
  "total_variation_distance",
  "total_variation_loss",
  "training_signal_annealing_mask",
  "triplet_margin_loss",
  "tversky_loss",
  "uda_consistency_loss",
  "uniformity_loss",
  "vae_loss",
  "vicreg_loss",
]
