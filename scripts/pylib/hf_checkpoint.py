"""A Hugging Face checkpoint directory: config.json + one or many safetensors."""
import json
import os

from .safetensors_io import SafetensorsFile


class Checkpoint:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            self.config = json.load(f)
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
            files = {fn: SafetensorsFile(os.path.join(path, fn)) for fn in sorted(set(weight_map.values()))}
            self.where = {name: files[fn] for name, fn in weight_map.items()}
        else:
            single = SafetensorsFile(os.path.join(path, "model.safetensors"))
            self.where = {name: single for name in single.keys()}

    def names(self):
        return list(self.where)

    def __contains__(self, name):
        return name in self.where

    def info(self, name):
        return self.where[name].info(name)

    def get_f32(self, name, rows=None):
        return self.where[name].get_f32(name, rows)

    def raw(self, name):
        return self.where[name].raw(name)

    def json(self, filename):
        p = os.path.join(self.path, filename)
        if not os.path.exists(p):
            return None
        with open(p, encoding="utf-8") as f:
            return json.load(f)
