using System.Net.Sockets;
using MailKit;

namespace SendEngine.Transports;

/// <summary>
/// The stream MailKit talks through (below TLS, above the socket). It does two things MailKit cannot:
/// <list type="bullet">
/// <item>Times each read and write by SMTP phase: <see cref="_dataTimeout"/> for the reply to the end of DATA, the command
/// timeout for everything else (RFC 5321 4.5.3.2). MailKit has one timeout, and does not apply it to a stream it is given.</item>
/// <item>Tells whether the whole message was written (<see cref="PayloadWritten"/>). MailKit reports transfer progress
/// (<see cref="ITransferProgress"/>) while it writes the message, after DATA's 354 or right after <c>BDAT n LAST</c>;
/// it reads nothing while it writes the payload, and flushes the final <c>CRLF.CRLF</c> (DATA) or the last byte of
/// the single LAST chunk (BDAT) before it reads the reply. So the first read after progress began is proof that every
/// byte of the message reached the socket, TLS or not; a failure before that read is a failure before the end of DATA.</item>
/// </list>
/// One SMTP operation at a time, as MailKit does (no concurrent reads and writes).
/// </summary>
internal sealed class SmtpWireStream : Stream, ITransferProgress
{
    private const int Commands = 0;
    private const int Payload = 1;
    private const int AwaitingReply = 2;

    private readonly Socket _socket;
    private readonly NetworkStream _inner;
    private readonly TimeSpan _commandTimeout;
    private readonly TimeSpan _dataTimeout;
    /// <summary>Reused for operations without a caller token (the delivery path), so a read costs no allocation for its timer.</summary>
    private CancellationTokenSource _timer = new();
    private int _phase;

    public SmtpWireStream(Socket socket, TimeSpan commandTimeout, TimeSpan dataTimeout)
    {
        _socket = socket;
        _inner = new NetworkStream(socket, ownsSocket: true);
        _commandTimeout = commandTimeout;
        _dataTimeout = dataTimeout;
    }

    /// <summary>Call before each message: back to command timeouts, nothing written yet.</summary>
    public void BeginTransaction() => Volatile.Write(ref _phase, Commands);

    /// <summary>True once the whole message (final dot / BDAT LAST chunk) was written and the reply is awaited.</summary>
    public bool PayloadWritten => Volatile.Read(ref _phase) == AwaitingReply;

    /// <summary>How long the next reply may take: the data timeout once the whole message was written, else the command timeout.</summary>
    public TimeSpan ReplyTimeout => PayloadWritten ? _dataTimeout : _commandTimeout;

    void ITransferProgress.Report(long bytesTransferred, long totalSize) => PayloadStarted();

    void ITransferProgress.Report(long bytesTransferred) => PayloadStarted();

    private void PayloadStarted() => Interlocked.CompareExchange(ref _phase, Payload, Commands);

    /// <summary>The read that follows the payload waits for the end-of-DATA reply.</summary>
    private TimeSpan BeforeRead()
    {
        Interlocked.CompareExchange(ref _phase, AwaitingReply, Payload);
        return ReplyTimeout;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var limit = BeforeRead();
        var timer = Arm(limit, cancellationToken);
        try
        {
            return await _inner.ReadAsync(buffer, timer.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException(PayloadWritten
                ? $"no reply to the end of DATA within {limit} (Smtp:DataTimeout)"
                : $"no reply within {limit} (Smtp:CommandTimeout)");
        }
        finally
        {
            Disarm(timer);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var timer = Arm(_commandTimeout, cancellationToken);
        try
        {
            await _inner.WriteAsync(buffer, timer.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the server took no data for {_commandTimeout} (Smtp:CommandTimeout)");
        }
        finally
        {
            Disarm(timer);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private CancellationTokenSource Arm(TimeSpan limit, CancellationToken cancellationToken)
    {
        CancellationTokenSource timer;
        if (cancellationToken.CanBeCanceled)
        {
            timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        }
        else
        {
            if (!_timer.TryReset())
            {
                _timer.Dispose();
                _timer = new CancellationTokenSource();
            }
            timer = _timer;
        }
        timer.CancelAfter(limit);
        return timer;
    }

    private void Disarm(CancellationTokenSource timer)
    {
        if (ReferenceEquals(timer, _timer))
        {
            // Stops the timer, so it does not fire while the connection waits idle for the next message.
            timer.TryReset();
        }
        else
        {
            timer.Dispose();
        }
    }

    // Synchronous use (MailKit's synchronous API) gets the same limits through the socket's own timeouts.
    public override int Read(byte[] buffer, int offset, int count)
    {
        _socket.ReceiveTimeout = (int)BeforeRead().TotalMilliseconds;
        return _inner.Read(buffer, offset, count);
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        _socket.SendTimeout = (int)_commandTimeout.TotalMilliseconds;
        _inner.Write(buffer, offset, count);
    }

    public override void Flush() => _inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    /// <summary>False: the timeouts are this stream's own, by phase; MailKit must not set one for all.</summary>
    public override bool CanTimeout => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            _timer.Dispose();
        }
        base.Dispose(disposing);
    }
}
