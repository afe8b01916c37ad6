//! Symbols for one request: the store's interner, extended by a request-local one for
//! strings only the request knows (its user and object, its contextual tuples).

use crate::intern::{Interner, Sym};

pub(crate) struct Names<'a> {
    global: &'a Interner,
    local: Interner,
    base: Sym,
}

impl<'a> Names<'a> {
    pub fn new(global: &'a Interner) -> Self {
        Names {
            global,
            local: Interner::new(),
            base: global.len() as Sym,
        }
    }

    /// The symbol of `s`, adding it to the request-local table if the store lacks it.
    pub fn intern(&mut self, s: &str) -> Sym {
        match self.global.get(s) {
            Some(sym) => sym,
            None => self.base + self.local.intern(s),
        }
    }

    /// The symbol of `s` if the store or the request knows it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.global
            .get(s)
            .or_else(|| self.local.get(s).map(|l| self.base + l))
    }

    pub fn resolve(&self, sym: Sym) -> &str {
        if sym < self.base {
            self.global.resolve(sym)
        } else {
            self.local.resolve(sym - self.base)
        }
    }
}

impl Names<'_> {
    /// The strings only this request knows.
    pub fn locals(&self) -> impl Iterator<Item = &str> {
        (0..self.local.len() as Sym).map(|i| self.local.resolve(i))
    }
}
