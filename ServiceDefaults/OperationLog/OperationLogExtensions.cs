using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Newsletter.ServiceDefaults.OperationLog;

public static class OperationLogExtensions
{
    /// <summary>The operation log on the service's <see cref="NpgsqlDataSource"/> (its own database, table operation_log).</summary>
    public static IServiceCollection AddOperationLog(this IServiceCollection services)
    {
        services.AddScoped<OperationLogScope>();
        services.AddScoped<IOperationLog>(sp => sp.GetRequiredService<OperationLogScope>());
        services.AddSingleton<OperationLogWriter>();
        services.AddSingleton<OperationLogStore>();
        return services;
    }

    /// <summary>Before UseAuthentication/UseAuthorization, so the row sees their principal and their 403.</summary>
    public static IApplicationBuilder UseOperationLog(this IApplicationBuilder app) => app.UseMiddleware<OperationLogMiddleware>();

    /// <summary>Leaves the endpoint's calls out of the operation log (they are logged elsewhere, e.g. transactional sends).</summary>
    public static TBuilder WithoutOperationLog<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(ExcludeFromOperationLogMetadata.Instance);
}

/// <summary>The retention sweep's part: deletes rows older than the cutoff, which the append-only trigger lets through.</summary>
public static class OperationLogRetention
{
    public static async Task<long> SweepAsync(NpgsqlDataSource db, DateTimeOffset before, int batchSize, CancellationToken ct)
    {
        long total = 0;
        while (true)
        {
            await using var conn = await db.OpenConnectionAsync(ct);
            await using var tx = await conn.BeginTransactionAsync(ct);
            await using (var set = new NpgsqlCommand("SELECT set_config($1, $2, true)", conn, tx))
            {
                set.Parameters.Add(new NpgsqlParameter { Value = OperationLogSchema.SweepSetting });
                set.Parameters.Add(new NpgsqlParameter { Value = before.ToUniversalTime().ToString("O", System.Globalization.CultureInfo.InvariantCulture) });
                await set.ExecuteNonQueryAsync(ct);
            }
            int n;
            await using (var delete = new NpgsqlCommand($"""
                DELETE FROM {OperationLogSchema.Table} WHERE id IN (
                    SELECT id FROM {OperationLogSchema.Table} WHERE occurred_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
                """, conn, tx))
            {
                delete.Parameters.Add(new NpgsqlParameter { Value = before });
                delete.Parameters.Add(new NpgsqlParameter { Value = batchSize });
                n = await delete.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
            total += n;
            if (n < batchSize)
            {
                return total;
            }
        }
    }
}
