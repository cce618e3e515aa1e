"""LRUStoreCache: a byte-bounded LRU cache in front of any store."""

from aiostore.stores.cache.store import LRUStoreCache

__all__ = ["LRUStoreCache"]
