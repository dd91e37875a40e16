namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>
/// What an endpoint adds to its request's operation-log row (scoped, one per request). The row itself is written by
/// <see cref="OperationLogMiddleware"/> after the endpoint ran; without a call here it holds who, what and where.
/// </summary>
public interface IOperationLog
{
    /// <summary>
    /// The state before and after the change (either may be null). Serialized as the API answers JSON, with secrets
    /// removed (<see cref="OperationLogRedactor"/>); a snapshot over 4 KB is left out with a note.
    /// </summary>
    void Describe(object? before, object? after);

    /// <summary>The tenant the change concerns, for a route that names none (e.g. a client by its client_id).</summary>
    void ForTenant(Guid? tenantId);
}

internal sealed class OperationLogScope : IOperationLog
{
    public bool Described { get; private set; }
    public object? Before { get; private set; }
    public object? After { get; private set; }
    public Guid? TenantId { get; private set; }

    public void Describe(object? before, object? after)
    {
        Described = true;
        Before = before;
        After = after;
    }

    public void ForTenant(Guid? tenantId) => TenantId = tenantId;
}
