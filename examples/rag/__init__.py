"""The RAG demo's parts (``examples/rag_demo.py`` runs them).

* :mod:`rag.corpus`: the shipped passages and questions;
* :mod:`rag.settings`: the config file, model paths, SmolLM2 conversion;
* :mod:`rag.ingest`: passages → embedding service → vdb service;
* :mod:`rag.pipeline`: the answering pipeline's functions and its builder;
* :mod:`rag.report`: progress bars, answers, the summary and the ``--out`` JSON;
* :mod:`rag.gpu`: GPU figures through the monitor plugin's NVML collector.
"""
