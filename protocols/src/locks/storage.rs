//! The resource a lock protects: a counter, with fencing-token checks when tokens come.

use sim_core::NodeId;

use super::{LockCtx, LockMsg, LockObs, StorageReply};

/// A counter that clients read and write back incremented.
#[derive(Default)]
pub struct ProtectedStorage {
    counter: u64,
    /// The highest fencing number seen; requests below it are refused.
    highest_fence: u64,
}

impl ProtectedStorage {
    pub fn counter(&self) -> u64 {
        self.counter
    }

    pub fn on_message(&mut self, ctx: &mut LockCtx<'_>, from: NodeId, msg: LockMsg) {
        let (req, holder, fence, write) = match &msg {
            LockMsg::Read { req, holder, fence } => (*req, holder.clone(), *fence, None),
            LockMsg::Write { req, holder, fence, value } => (*req, holder.clone(), *fence, Some(*value)),
            _ => return,
        };
        if let Some(fence) = fence {
            if fence < self.highest_fence {
                let highest = self.highest_fence;
                ctx.observe(LockObs::Refused { holder, fence, highest });
                ctx.send(from, LockMsg::StorageAnswer { req, reply: StorageReply::Rejected { highest } });
                return;
            }
            self.highest_fence = fence;
        }
        let reply = match write {
            Some(value) => {
                self.counter = value;
                ctx.observe(LockObs::Accepted { holder, write: true, value });
                StorageReply::Written
            }
            None => {
                ctx.observe(LockObs::Accepted { holder, write: false, value: self.counter });
                StorageReply::Value(self.counter)
            }
        };
        ctx.send(from, LockMsg::StorageAnswer { req, reply });
    }
}
