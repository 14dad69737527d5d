//! Event time: the watermark over the inputs, and each windowed hunt's buffered rows.

pub mod state;
pub mod watermark;

pub use state::{Brought, ClosedWindow, Origin, WindowState};
pub use watermark::{InputProgress, Watermark, WatermarkTracker};
