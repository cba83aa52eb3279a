use sea_orm::entity::prelude::*;

/// One refresh-token family. Its id is the `sid` claim of the access tokens it issues.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTimeUtc,
    /// Absolute end of the session; rotation does not extend it.
    pub expires_at: DateTimeUtc,
    pub last_used_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    /// The last client IP: at login, then at each refresh.
    pub ip: Option<String>,
    /// Read from `user_agent` when the session started; `None` when unknown.
    pub browser: Option<String>,
    pub os: Option<String>,
    /// `aal1` | `aal2`.
    pub aal: String,
    /// How the session was proved: space-separated `amr` values.
    pub amr: String,
    /// When a credential was last proved on it (set on every session since its
    /// migration; `created_at` for older rows).
    pub auth_time: Option<DateTimeUtc>,
}

impl Model {
    pub fn assurance(&self) -> crate::domain::assurance::Assurance {
        crate::domain::assurance::Assurance::from_stored(
            &self.aal,
            &self.amr,
            self.auth_time.unwrap_or(self.created_at),
        )
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
