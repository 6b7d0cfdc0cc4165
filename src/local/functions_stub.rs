pub fn register(_ctx: &datafusion::prelude::SessionContext) {}
