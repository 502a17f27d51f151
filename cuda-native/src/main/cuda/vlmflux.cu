// The one translation unit that nvcc (build time) and NVRTC (run time) compile into the VLMFlux kernel module.
// Every op family lives in its own file; list new files here and in io.vlmflux.cuda.gpu.KernelSources.
#include "common.cuh"
#include "embedding.cu"
#include "norm.cu"
#include "activation.cu"
#include "gemv.cu"
#include "int4.cu"
#include "rope.cu"
#include "attention.cu"
#include "decode_mega.cu"
#include "sampling.cu"
#include "vision_encoder.cu"
#include "vision_preprocess.cu"
