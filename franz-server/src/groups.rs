//! Consumer groups: the coordinator state machine, and committed offsets stored in
//! `__consumer_offsets`.

use std::sync::Arc;

use franz_core::Disk;

use crate::broker::Broker;

pub struct GroupService<D: Disk> {
    pub broker: Arc<Broker<D>>,
}

impl<D: Disk> GroupService<D> {
    pub async fn open(broker: Arc<Broker<D>>) -> Result<Arc<GroupService<D>>, String> {
        Ok(Arc::new(GroupService { broker }))
    }
}
