using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace MemberCenter.Data.Migrations
{
    /// <inheritdoc />
    public partial class RetentionIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_subscription_tokens_expires_at",
                table: "subscription_tokens",
                column: "expires_at");

            migrationBuilder.CreateIndex(
                name: "ix_outbox_messages_completed",
                table: "outbox_messages",
                column: "completed_at",
                filter: "completed_at IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_subscription_tokens_expires_at",
                table: "subscription_tokens");

            migrationBuilder.DropIndex(
                name: "ix_outbox_messages_completed",
                table: "outbox_messages");
        }
    }
}
