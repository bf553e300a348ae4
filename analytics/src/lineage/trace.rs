//! Traces: transformations walked depth first, forward or backward, each lot expanded once, cycles, fan-out and the lot budget reported as cuts.

use super::*;

/// What a walk reached: lots with their depth in the order reached, each link
/// (to, from, how), and what it cut.
pub(super) struct Walk {
    order: Vec<(u32, u32)>,
    links: Vec<(u32, u32, Neighbour)>,
    cut: Vec<Cut>,
}

/// A lot one transformation away: (lot, event, input quantity, output quantity).
#[derive(Debug, Clone, Copy)]
pub(super) struct Neighbour {
    lot: u32,
    event: u32,
    input: Qty,
    output: Qty,
}

/// How a traced lot was reached: from `from`, through a transformation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub from: String,
    pub event: EventView,
    /// The input quantity (forward: of `from`; backward: of this lot).
    pub input_quantity: Option<QuantityView>,
    pub output_quantity: Option<QuantityView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracedLot {
    pub lot: String,
    /// Transformations from the traced lot (0: the lot itself).
    pub depth: u32,
    /// Every transformation that links it to a lot one step closer.
    pub links: Vec<Link>,
    /// Every event that names it, in time order.
    pub events: Vec<EventView>,
    pub now: Option<Whereabouts>,
}

/// What a trace left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cut", rename_all = "snake_case")]
pub enum Cut {
    /// Following `lot` leads back to `back_to`, already on the path: the
    /// data says a lot is its own ancestor. The link is reported, not followed.
    Cycle {
        lot: String,
        back_to: String,
        event: At,
    },
    /// `lot` has more linked lots than the limit; the first `kept` were followed.
    FanOut {
        lot: String,
        kept: usize,
        total: usize,
    },
    /// The trace reached its lot budget; lots past it were not expanded.
    Budget { lots: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Descendants: what was made from the lot.
    Forward,
    /// Ancestors: what the lot was made from.
    Backward,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub root: String,
    pub direction: Direction,
    /// The lot itself first, then the others in the order reached.
    pub lots: Vec<TracedLot>,
    pub cut: Vec<Cut>,
}

impl Trace {
    /// The traced lots other than the root.
    pub fn others(&self) -> impl Iterator<Item = &str> {
        self.lots.iter().skip(1).map(|l| l.lot.as_str())
    }
}

/// Bounds on one trace's work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_lots: usize,
    pub max_fanout: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_lots: 100_000,
            max_fanout: 10_000,
        }
    }
}

impl Lineage {
    /// The lots one transformation away from `lot`, with the event and the
    /// quantities: its outputs where it is an input (forward), its inputs
    /// where it is an output (backward). Each neighbour once per event.
    pub(super) fn neighbours(&self, lot: u32, dir: Direction) -> Vec<Neighbour> {
        let (here, there) = match dir {
            Direction::Forward => (SubjectRole::Input, SubjectRole::Output),
            Direction::Backward => (SubjectRole::Output, SubjectRole::Input),
        };
        let mut out = Vec::new();
        for &ei in &self.mentions[lot as usize] {
            let e = &self.events[ei as usize];
            if e.kind != EventKind::Transformation {
                continue;
            }
            let Some(mine) = e.subjects.iter().find(|m| m.id == lot && role_is(m, here)) else {
                continue;
            };
            for other in e.subjects.iter().filter(|m| role_is(m, there)) {
                let (input, output) = match dir {
                    Direction::Forward => (mine.quantity, other.quantity),
                    Direction::Backward => (other.quantity, mine.quantity),
                };
                if !out
                    .iter()
                    .any(|n: &Neighbour| n.lot == other.id && n.event == ei)
                {
                    out.push(Neighbour {
                        lot: other.id,
                        event: ei,
                        input,
                        output,
                    });
                }
            }
        }
        out
    }

    /// The depth-first walk under a trace, on ids only.
    pub(super) fn walk(&self, root: u32, dir: Direction, limits: Limits) -> Walk {
        // Depth-first, so a link back to a lot on the current path is a cycle.
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut state: HashMap<u32, u8> = HashMap::new();
        let mut order: Vec<(u32, u32)> = Vec::new(); // (lot, depth), in the order reached
        let mut links: Vec<(u32, u32, Neighbour)> = Vec::new();
        let mut cut = Vec::new();
        let mut budget_hit = false;
        // Each frame: (lot, depth, its neighbours, next neighbour to visit).
        type Frame = (u32, u32, Vec<Neighbour>, usize);
        let mut stack: Vec<Frame> = Vec::new();
        let enter = |l: u32,
                     depth: u32,
                     stack: &mut Vec<Frame>,
                     state: &mut HashMap<u32, u8>,
                     order: &mut Vec<(u32, u32)>,
                     cut: &mut Vec<Cut>| {
            state.insert(l, ON_PATH);
            order.push((l, depth));
            let mut next = self.neighbours(l, dir);
            let distinct = {
                let mut d: Vec<u32> = next.iter().map(|n| n.lot).collect();
                d.sort_unstable();
                d.dedup();
                d
            };
            if distinct.len() > limits.max_fanout {
                let keep: Vec<u32> = distinct[..limits.max_fanout].to_vec();
                next.retain(|n| keep.binary_search(&n.lot).is_ok());
                cut.push(Cut::FanOut {
                    lot: self.name(l).to_string(),
                    kept: limits.max_fanout,
                    total: distinct.len(),
                });
            }
            stack.push((l, depth, next, 0));
        };
        enter(root, 0, &mut stack, &mut state, &mut order, &mut cut);
        while let Some(frame) = stack.last_mut() {
            let (l, depth) = (frame.0, frame.1);
            let Some(&Neighbour {
                lot: other,
                event: ei,
                input: in_q,
                output: out_q,
            }) = frame.2.get(frame.3)
            else {
                state.insert(l, DONE);
                stack.pop();
                continue;
            };
            frame.3 += 1;
            let e = &self.events[ei as usize];
            match state.get(&other).copied().unwrap_or(NEW) {
                ON_PATH => {
                    cut.push(Cut::Cycle {
                        lot: self.name(l).to_string(),
                        back_to: self.name(other).to_string(),
                        event: e.at,
                    });
                    continue;
                }
                DONE => {}
                _ => {
                    if order.len() >= limits.max_lots {
                        budget_hit = true;
                        continue;
                    }
                    enter(
                        other,
                        depth + 1,
                        &mut stack,
                        &mut state,
                        &mut order,
                        &mut cut,
                    );
                }
            }
            if other != root {
                links.push((
                    other,
                    l,
                    Neighbour {
                        lot: other,
                        event: ei,
                        input: in_q,
                        output: out_q,
                    },
                ));
            }
        }
        if budget_hit {
            cut.push(Cut::Budget {
                lots: limits.max_lots,
            });
        }
        Walk { order, links, cut }
    }

    /// The lots a trace reaches, by name, without rendering their events:
    /// the walk alone (what a recursive query over the edges answers).
    pub fn trace_lots(&self, lot: &str, dir: Direction, limits: Limits) -> Option<Vec<&str>> {
        let root = *self.id_of(lot)?;
        if self.mentions[root as usize].is_empty() {
            return None;
        }
        let w = self.walk(root, dir, limits);
        Some(w.order.iter().map(|&(l, _)| self.name(l)).collect())
    }

    /// Traces `lot` forward (descendants) or backward (ancestors). `None` if
    /// no event names the lot.
    pub fn trace(&self, lot: &str, dir: Direction, limits: Limits) -> Option<Trace> {
        let root = *self.id_of(lot)?;
        if self.mentions[root as usize].is_empty() {
            return None;
        }
        let Walk { order, links, cut } = self.walk(root, dir, limits);
        let mut by_lot: HashMap<u32, Vec<Link>> = HashMap::new();
        for (to, from, n) in links {
            by_lot.entry(to).or_default().push(Link {
                from: self.name(from).to_string(),
                event: self.view(&self.events[n.event as usize]),
                input_quantity: self.quantity(n.input),
                output_quantity: self.quantity(n.output),
            });
        }
        let lots = order
            .into_iter()
            .map(|(l, depth)| TracedLot {
                lot: self.name(l).to_string(),
                depth,
                links: by_lot.remove(&l).unwrap_or_default(),
                events: self
                    .events_of(l)
                    .into_iter()
                    .map(|e| self.view(e))
                    .collect(),
                now: self.whereabouts(l),
            })
            .collect();
        Some(Trace {
            root: lot.to_string(),
            direction: dir,
            lots,
            cut,
        })
    }
}
