//! The checks of `during` windows: real times, a time zone the zone
//! database knows, days named once.
