//! Indexing: index_select, gather, scatter_add, masked_fill, one_hot and embedding lookup.
