"""The refit job: a third program above ``trainer/`` (training) and ``stream/`` (serving).

``labels`` reads the labeled topic into the label store, ``job`` selects, trains, gates and
promotes a candidate, ``publish`` puts a model into service (export, index, alias switch,
``ModelUpdated``); ``settings`` holds the job's ``RefitSettings``.
"""
