//! A compact string interner: every distinct type name, object id and relation name is
//! stored once and referred to by a `u32` symbol.
//!
//! Strings live back to back in one buffer; the hash table holds only symbols. This
//! keeps memory per distinct string near its length plus ~10 bytes, which is what lets
//! the store stay under 200 bytes per tuple.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// A symbol: the index of an interned string.
pub type Sym = u32;

#[derive(Debug, Default, Clone)]
pub struct Interner {
    buf: String,
    /// `ends[i]` is the end offset of string `i` in `buf` (its start is `ends[i - 1]`).
    ends: Vec<u32>,
    table: HashTable<Sym>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    fn hash(s: &str) -> u64 {
        FxBuildHasher.hash_one(s)
    }

    /// The string of `sym`. Symbols come only from this interner, so the range is valid.
    pub fn resolve(&self, sym: Sym) -> &str {
        let i = sym as usize;
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0) as usize
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.buf.get(start..end).unwrap_or("")
    }

    /// The symbol of `s`, if it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.table
            .find(Self::hash(s), |&sym| self.resolve(sym) == s)
            .copied()
    }

    /// The symbol of `s`, interning it first if needed.
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = Self::hash(s);
        if let Some(&sym) = self.table.find(hash, |&sym| self.resolve(sym) == s) {
            return sym;
        }
        let sym = self.ends.len() as Sym;
        self.buf.push_str(s);
        self.ends.push(self.buf.len() as u32);
        // Rehashing needs the strings, which live in `buf`/`ends` beside the table.
        let (buf, ends) = (&self.buf, &self.ends);
        let resolve = |sym: Sym| {
            let i = sym as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            &buf[start..ends[i] as usize]
        };
        self.table
            .insert_unique(hash, sym, |&other| Self::hash(resolve(other)));
        sym
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once_and_resolves() {
        let mut i = Interner::new();
        let a = i.intern("document");
        let b = i.intern("viewer");
        assert_eq!(i.intern("document"), a);
        assert_ne!(a, b);
        assert_eq!(i.resolve(b), "viewer");
        assert_eq!(i.get("viewer"), Some(b));
        assert_eq!(i.get("nope"), None);
        for n in 0..10_000 {
            i.intern(&format!("id{n}"));
        }
        assert_eq!(i.resolve(i.get("id9999").unwrap()), "id9999");
        assert_eq!(i.resolve(a), "document");
    }
}
