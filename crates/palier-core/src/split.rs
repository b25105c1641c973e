//! Exact pro-rata splits (programs.md §0, §7.4; decisions D1).

/// Splits `total` over `weights` pro rata, each share rounded down, the remainder
/// going to the largest weight (the first one on a tie). The shares always sum to
/// `total` exactly. With every weight zero, the first share takes everything.
pub fn split_pro_rata(total: i64, weights: &[i64]) -> Vec<i64> {
    let split = ProRata::new(total, weights.iter().copied());
    weights.iter().enumerate().map(|(index, weight)| split.share(index, *weight)).collect()
}

/// [`split_pro_rata`] without allocating: set up once over the weights, then asked
/// for each share.
#[derive(Clone, Copy, Debug)]
pub struct ProRata {
    total: i64,
    sum: i128,
    largest: usize,
    remainder: i64,
}

impl ProRata {
    pub fn new(total: i64, weights: impl Iterator<Item = i64> + Clone) -> ProRata {
        let sum: i128 = weights.clone().map(i128::from).sum();
        let mut split = ProRata { total, sum, largest: 0, remainder: 0 };
        let (mut largest_weight, mut given) = (i64::MIN, 0_i64);
        for (index, weight) in weights.enumerate() {
            if weight > largest_weight {
                largest_weight = weight;
                split.largest = index;
            }
            given += split.floor(weight);
        }
        split.remainder = total - given;
        split
    }

    fn floor(&self, weight: i64) -> i64 {
        if self.sum == 0 {
            return 0;
        }
        // In 64 bits when it fits (always, for real amounts); the quotient is the same.
        if let (Some(product), Ok(sum @ 1..)) = (self.total.checked_mul(weight), i64::try_from(self.sum)) {
            return product.div_euclid(sum);
        }
        (i128::from(self.total) * i128::from(weight)).div_euclid(self.sum) as i64
    }

    /// The share of the weight at `index`.
    pub fn share(&self, index: usize, weight: i64) -> i64 {
        self.floor(weight) + if index == self.largest { self.remainder } else { 0 }
    }
}

/// What a partial removal of `quantity` of a line's `bought` units takes from
/// `value`, given what earlier removals took (`removed_units`, `removed_value`):
/// `floor(value × quantity / bought)`, except the removal that brings the removed
/// units to `bought`, which takes whatever is left (programs.md §7.4).
pub fn partial_share(value: i64, bought: u32, removed_units: u32, removed_value: i64, quantity: u32) -> i64 {
    if removed_units + quantity >= bought {
        return value - removed_value;
    }
    (i128::from(value) * i128::from(quantity) / i128::from(bought)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligible_value_split_gives_the_remainder_to_the_largest_line() {
        // 100.00 over weights 1, 1, 1: 33.33 each, 0.01 to the first (a tie).
        assert_eq!(split_pro_rata(10_000, &[1, 1, 1]), vec![3334, 3333, 3333]);
        // The largest weight takes the remainder even when it is not first.
        assert_eq!(split_pro_rata(1001, &[1, 2]), vec![333, 668]);
        assert_eq!(split_pro_rata(7, &[0, 0]), vec![7, 0]);
        assert_eq!(split_pro_rata(0, &[5, 5]), vec![0, 0]);
    }

    proptest::proptest! {
        /// The 64-bit division gives the 128-bit one's quotient.
        #[test]
        fn the_split_in_64_bits_is_the_split_in_128(
            total in proptest::prelude::any::<i64>(),
            weight in proptest::prelude::any::<i64>(),
            sum in proptest::prelude::any::<i64>(),
            small in proptest::prelude::any::<bool>(),
        ) {
            let (total, weight) = if small { (total % 10_000_000, weight % 10_000_000) } else { (total, weight) };
            let split = ProRata { total, sum: i128::from(sum), largest: 0, remainder: 0 };
            let wide = if sum == 0 { 0 } else { (i128::from(total) * i128::from(weight)).div_euclid(i128::from(sum)) as i64 };
            proptest::prop_assert_eq!(split.floor(weight), wide);
        }
    }

    #[test]
    fn partial_returns_come_back_exactly() {
        // A line of 3 units worth 100: 33, 33, then the last takes 34.
        assert_eq!(partial_share(100, 3, 0, 0, 1), 33);
        assert_eq!(partial_share(100, 3, 1, 33, 1), 33);
        assert_eq!(partial_share(100, 3, 2, 66, 1), 34);
        assert_eq!(partial_share(100, 3, 0, 0, 3), 100);
    }
}
