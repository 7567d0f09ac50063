//! For the crate's unit tests only: a bb8 manager that never connects,
//! for tests of what is built around a bb8 pool or builder.

/// A bb8 manager whose connects all fail.
#[derive(Debug)]
pub(crate) struct Never;

impl bb8::ManageConnection for Never {
    type Connection = ();
    type Error = std::io::Error;
    async fn connect(&self) -> Result<(), std::io::Error> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
    async fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut ()) -> bool {
        false
    }
}
