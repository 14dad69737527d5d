//! A fixed-size row set (one bit per row of a batch) for evaluating rule conditions word by word.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    pub fn zeros(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    pub fn ones(len: usize) -> Bits {
        let mut words = vec![u64::MAX; len.div_ceil(64)];
        if !len.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = (1u64 << (len % 64)) - 1;
        }
        Bits { words, len }
    }

    pub fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    #[cfg(test)]
    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn any(&self) -> bool {
        self.words.iter().any(|&w| w != 0)
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn and(&self, other: &Bits) -> Bits {
        Bits {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a & b)
                .collect(),
            len: self.len,
        }
    }

    pub fn and_not(&self, other: &Bits) -> Bits {
        Bits {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a & !b)
                .collect(),
            len: self.len,
        }
    }

    pub fn or_assign(&mut self, other: &Bits) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// The set rows, ascending.
    pub fn ones_iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }

    /// The subset of these rows for which `keep` is true.
    pub fn filter(&self, mut keep: impl FnMut(usize) -> bool) -> Bits {
        let mut out = Bits::zeros(self.len);
        for row in self.ones_iter() {
            if keep(row) {
                out.set(row);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Bits;

    #[test]
    fn set_operations_respect_the_length() {
        let all = Bits::ones(70);
        assert_eq!(all.count(), 70);
        let mut a = Bits::zeros(70);
        a.set(0);
        a.set(69);
        assert_eq!(a.ones_iter().collect::<Vec<_>>(), vec![0, 69]);
        assert_eq!(all.and_not(&a).count(), 68);
        assert_eq!(all.and(&a), a);
        assert!(a.get(69) && !a.get(68));
        assert_eq!(all.filter(|r| r % 10 == 0).count(), 7);
    }
}
