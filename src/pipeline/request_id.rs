//! The request id: the client's `x-request-id` if it sent a sane one, else a fresh one from the
//! shard's generator. One per request: the answer, the upstream and the audit record carry it.

use crate::context::ShardCtx;

/// A request id: the client's if it sent a sane one, else ours.
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; 64],
    len: usize,
}

impl RequestId {
    pub(super) fn for_request(ctx: &ShardCtx, client_value: Option<&[u8]>) -> RequestId {
        let mut id = RequestId {
            bytes: [0; 64],
            len: 0,
        };
        match client_value {
            Some(v)
                if !v.is_empty()
                    && v.len() <= 64
                    && v.iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
            {
                id.bytes[..v.len()].copy_from_slice(v);
                id.len = v.len();
            }
            _ => {
                let mut fresh = [0u8; 24];
                ctx.request_ids.next(&mut fresh);
                id.bytes[..24].copy_from_slice(&fresh);
                id.len = 24;
            }
        }
        id
    }

    /// No id yet (a connection before its first head).
    pub const NONE: RequestId = RequestId {
        bytes: [0; 64],
        len: 0,
    };

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}
