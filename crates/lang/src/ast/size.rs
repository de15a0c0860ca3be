//! Byte sizes as written in a comparison with `size of` (`100 KB`).

/// `100 KB`: an amount and a unit (`B`, `KB` = 1000 B, `KiB` = 1024 B, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize {
    pub amount: u64,
    pub unit: SizeUnit,
}

impl ByteSize {
    /// Bytes, saturating (the checker refuses what does not fit).
    pub fn bytes(self) -> u64 {
        self.amount.saturating_mul(self.unit.bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeUnit {
    B,
    Kb,
    Mb,
    Gb,
    Kib,
    Mib,
    Gib,
}

impl SizeUnit {
    pub const ALL: [SizeUnit; 7] = [
        SizeUnit::B,
        SizeUnit::Kb,
        SizeUnit::Mb,
        SizeUnit::Gb,
        SizeUnit::Kib,
        SizeUnit::Mib,
        SizeUnit::Gib,
    ];
    pub fn keyword(self) -> &'static str {
        match self {
            SizeUnit::B => "B",
            SizeUnit::Kb => "KB",
            SizeUnit::Mb => "MB",
            SizeUnit::Gb => "GB",
            SizeUnit::Kib => "KiB",
            SizeUnit::Mib => "MiB",
            SizeUnit::Gib => "GiB",
        }
    }
    pub fn bytes(self) -> u64 {
        match self {
            SizeUnit::B => 1,
            SizeUnit::Kb => 1000,
            SizeUnit::Mb => 1_000_000,
            SizeUnit::Gb => 1_000_000_000,
            SizeUnit::Kib => 1024,
            SizeUnit::Mib => 1024 * 1024,
            SizeUnit::Gib => 1024 * 1024 * 1024,
        }
    }
    pub fn from_keyword(s: &str) -> Option<SizeUnit> {
        SizeUnit::ALL.into_iter().find(|u| u.keyword() == s)
    }
}
