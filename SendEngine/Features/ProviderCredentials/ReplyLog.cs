using System.Text;
using MailKit;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>
/// Keeps what a server said during a check (its replies only: the client's lines, which carry AUTH data, are not
/// kept), to show as the check's answer. Bounded, so a chatty server cannot fill the row.
/// </summary>
internal sealed class ReplyLog : IProtocolLogger
{
    private const int Limit = 1500;
    private readonly StringBuilder _text = new();

    public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }

    public void LogConnect(Uri uri)
    {
    }

    public void LogClient(byte[] buffer, int offset, int count)
    {
    }

    public void LogServer(byte[] buffer, int offset, int count)
    {
        if (_text.Length < Limit)
        {
            _text.Append(Encoding.UTF8.GetString(buffer, offset, Math.Min(count, Limit - _text.Length)));
        }
    }

    public override string ToString() => _text.ToString().Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd();

    public void Dispose()
    {
    }
}
