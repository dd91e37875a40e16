using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MimeKit;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.Contracts.SenderDomains;
using Newsletter.Contracts.Transactional;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// Seed 003's POST /api/v1/email end to end: the real Member Center issues the X-Pigeon-Api-Key, the shared Send Engine
/// delivers to maildev, and each received message is parsed with MimeKit (headers, envelope, parts).
/// </summary>
[LongRunning(113)]
public sealed class TransactionalEmailTests(StackFixture stack)
{
    private static readonly byte[] Png = Convert.FromBase64String(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==");

    [Fact]
    public async Task SendEmail_EveryMessageField_ReachesEachRecipient()
    {
        var (tenant, client, d) = await TenantClientAsync();
        var token = Guid.NewGuid().ToString("N")[..10];
        var body = new
        {
            message = new
            {
                html = "<p>Hi *|name|*</p><p>*|BRAND|*</p><img src=\"cid:logo\">",
                text = "Hi *|NAME|*, order *|order|*",
                subject = token + " for *|NAME|*",
                from_email = $"shop@{d}",
                from_name = "The Shop",
                to = new object[]
                {
                    new { email = $"alice@{d}", name = "Alice", type = "to" },
                    new { email = $"bob@{d}", name = "Bob", type = "cc" },
                    new { email = $"carol@{d}", name = "Carol", type = "bcc" },
                },
                headers = new Dictionary<string, string>
                {
                    ["X-Order-Id"] = "42",
                    ["Reply-To"] = $"reply@{d}",
                    ["Message-ID"] = "<forged@evil.example>",
                    ["From"] = "evil@evil.example",
                    ["DKIM-Signature"] = "v=1; forged",
                },
                important = true,
                preserve_recipients = true,
                bcc_address = $"audit@{d}",
                merge = true,
                merge_language = "mailchimp",
                global_merge_vars = new[]
                {
                    new { name = "name", content = "Friend" },
                    new { name = "BRAND", content = "<b>ACME</b>" },
                    new { name = "order", content = "42" },
                },
                merge_vars = new[] { new { rcpt = $"ALICE@{d}", vars = new[] { new { name = "NAME", content = "Alice A" } } } },
                metadata = new Dictionary<string, object> { ["order"] = "42" },
                recipient_metadata = new[] { new { rcpt = $"alice@{d}", values = new Dictionary<string, object> { ["user_id"] = 7 } } },
                attachments = new[] { new { type = "text/plain", name = "note.txt", content = Convert.ToBase64String("hello file"u8.ToArray()) } },
                images = new[] { new { type = "image/png", name = "logo", content = Convert.ToBase64String(Png) } },
            },
        };
        var answer = await SendAsync(client, body);
        Assert.Equal([$"alice@{d}", $"bob@{d}", $"carol@{d}"], answer.Tasks.Select(t => t.Email));
        Assert.All(answer.Tasks, t => Assert.Equal(("queued", (string?)null), (t.Status, t.RejectReason)));
        Assert.Equal(3, answer.Tasks.Select(t => t.TaskId).Distinct().Count());

        var mails = await WaitForMailsAsync(m => m.Subject.StartsWith(token, StringComparison.Ordinal), 3);
        var alice = mails.Single(m => m.Envelope.Contains($"alice@{d}"));
        var bob = mails.Single(m => m.Envelope.Contains($"bob@{d}"));
        var carol = mails.Single(m => m.Envelope.Contains($"carol@{d}"));
        foreach (var m in mails)
        {
            // One recipient per message, plus the bcc_address copy; nobody else on the envelope.
            Assert.Equal(2, m.Envelope.Count);
            Assert.Contains($"audit@{d}", m.Envelope);
            var mime = m.Mime;
            // preserve_recipients: to and cc recipients shown, the bcc one never.
            Assert.Equal([$"alice@{d}"], mime.To.Mailboxes.Select(x => x.Address));
            Assert.Equal("Alice", mime.To.Mailboxes.Single().Name);
            Assert.Equal([$"bob@{d}"], mime.Cc.Mailboxes.Select(x => x.Address));
            Assert.Empty(mime.Bcc);
            Assert.DoesNotContain("carol@", m.Source.Split("\r\n\r\n")[0], StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("audit@", m.Source.Split("\r\n\r\n")[0], StringComparison.OrdinalIgnoreCase);
            // Kept: the tenant's own header and Reply-To; replaced: From, Message-ID, DKIM.
            Assert.Equal("42", mime.Headers["X-Order-Id"]);
            Assert.Equal($"reply@{d}", mime.ReplyTo.Mailboxes.Single().Address);
            Assert.Equal(($"shop@{d}", "The Shop"), (mime.From.Mailboxes.Single().Address, mime.From.Mailboxes.Single().Name));
            Assert.NotEqual("forged@evil.example", mime.MessageId);
            Assert.EndsWith("@" + d, mime.MessageId);
            Assert.DoesNotContain("evil.example", m.Source);
            Assert.DoesNotContain("forged", m.Source);
            Assert.Equal(XMessagePriority.Highest, mime.XPriority);
            Assert.Equal(MessageImportance.High, mime.Importance);
            // The attachment, and the inline image in multipart/related with the HTML, Content-ID = its name.
            var file = Assert.IsAssignableFrom<MimePart>(Assert.Single(mime.Attachments));
            Assert.Equal(("note.txt", "text/plain"), (file.FileName, file.ContentType.MimeType));
            Assert.Equal("hello file", Decode(file));
            var related = mime.BodyParts.OfType<MimePart>().Single(p => p.ContentType.MimeType == "image/png");
            Assert.Equal("logo", related.ContentId);
            Assert.Equal(Png, DecodeBytes(related));
            Assert.Equal("multipart/mixed", mime.Body?.ContentType.MimeType);
            var entities = new List<MimeEntity>();
            using (var iterator = new MimeIterator(mime))
            {
                while (iterator.MoveNext())
                {
                    entities.Add(iterator.Current!);
                }
            }
            var relatedPart = Assert.Single(entities.OfType<MultipartRelated>());
            Assert.Equal(["text/html", "image/png"], relatedPart.Select(p => p.ContentType.MimeType));
            // Mailchimp tags: the content as given (HTML stays HTML), in subject, HTML and text.
            Assert.Contains("<p><b>ACME</b></p>", mime.HtmlBody);
            Assert.Contains("<img src=\"cid:logo\">", mime.HtmlBody);
            Assert.Contains("order 42", mime.TextBody);
        }
        // merge_vars override the globals for their rcpt (case-insensitive address and name); the others get the globals.
        Assert.Equal(token + " for Alice A", alice.Mime.Subject);
        Assert.Contains("<p>Hi Alice A</p>", alice.Mime.HtmlBody);
        Assert.Contains("Hi Alice A, order 42", alice.Mime.TextBody);
        Assert.Equal(token + " for Friend", bob.Mime.Subject);
        Assert.Contains("Hi Friend", carol.Mime.TextBody);

        // Each task is sent, with its metadata (request metadata + recipient_metadata) and timestamps.
        var task = await WaitForTaskAsync(client, answer.Tasks[0].TaskId, t => t.Status == "sent");
        Assert.Equal(("to", 1), (task.Type, task.Attempts));
        Assert.Equal("42", task.Metadata["order"].GetString());
        Assert.Equal(7, task.Metadata["user_id"].GetInt32());
        Assert.NotNull(task.SentAt);
        // The task names the Message-ID the relay received, so a tenant can match bounces and replies to it.
        Assert.Equal(alice.Mime.MessageId, task.MessageId);
        Assert.Equal("cc", (await WaitForTaskAsync(client, answer.Tasks[1].TaskId, t => t.Status == "sent")).Type);
        Assert.False((await WaitForTaskAsync(client, answer.Tasks[2].TaskId, t => t.Status == "sent")).Metadata.ContainsKey("user_id"));

        // Like bulk mail, the send counts in the address's statistics.
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var stats = await StackFixture.ReadAsync<EmailStatisticsResponse>(await se.GetAsync($"api/email-addresses/alice@{d}/statistics"), HttpStatusCode.OK);
        Assert.Equal(1, stats.TotalSent);

        // An ESP event naming the message finds the task: delivered, and listed among its events.
        using var hook = stack.SendEngineClient();
        var eventBody = JsonSerializer.Serialize(new
        {
            @event = "delivered", email = $"alice@{d}", bulkId = "tx-" + token, timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            messageId = "<" + alice.Mime.MessageId + ">",
        });
        using (var posted = await hook.PostAsync("api/tencent/ses/webhook", new StringContent(eventBody, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        }
        var delivered = await WaitForTaskAsync(client, answer.Tasks[0].TaskId, t => t.Status == "delivered");
        Assert.Equal("delivered", Assert.Single(delivered.Events).Type);
    }

    [Fact]
    public async Task SendEmail_HandlebarsEscapes_MergeFalseKeepsTags_EachRecipientSeesOnlyThemselves()
    {
        var (_, client, d) = await TenantClientAsync();
        var token = Guid.NewGuid().ToString("N")[..10];
        await SendAsync(client, new
        {
            message = new
            {
                html = "<p>{{name}} / {{ Plan }}</p><p>{{{name}}}</p>{{#if items}}<ul>{{#each items}}<li>{{@index}} {{title}}</li>{{/each}}</ul>{{else}}none{{/if}}",
                subject = token + " hb {{name}}",
                from_email = $"shop@{d}",
                to = new[] { new { email = $"dan@{d}" }, new { email = $"eve@{d}" } },
                merge_language = "handlebars",
                global_merge_vars = new object[]
                {
                    new { name = "NAME", content = "<i>you</i>" }, new { name = "plan", content = "Gold" },
                    new { name = "items", content = new[] { new { title = "Tea & cake" }, new { title = "Cup" } } },
                },
            },
        });
        await SendAsync(client, new
        {
            message = new
            {
                text = "Hello *|NAME|*",
                subject = token + " off",
                from_email = $"shop@{d}",
                to = new[] { new { email = $"fay@{d}" } },
                merge = false,
                global_merge_vars = new[] { new { name = "name", content = "nobody" } },
            },
        });
        var hb = await WaitForMailsAsync(m => m.Subject.StartsWith(token + " hb", StringComparison.Ordinal), 2);
        foreach (var m in hb)
        {
            Assert.Equal(token + " hb <i>you</i>", m.Mime.Subject);
            Assert.Contains("<p>&lt;i&gt;you&lt;/i&gt; / Gold</p><p><i>you</i></p><ul><li>0 Tea &amp; cake</li><li>1 Cup</li></ul>", m.Mime.HtmlBody);
            // Without preserve_recipients each message shows its own recipient only.
            Assert.Equal(m.Envelope, m.Mime.To.Mailboxes.Select(x => x.Address).ToList());
            Assert.Empty(m.Mime.Cc);
        }
        var off = Assert.Single(await WaitForMailsAsync(m => m.Subject == token + " off", 1));
        Assert.Equal("Hello *|NAME|*", off.Mime.TextBody?.TrimEnd());
    }

    [Fact]
    public async Task SendEmail_IdempotencyKey_ReturnsTheFirstAnswerAndSendsOnce()
    {
        var (_, client, d) = await TenantClientAsync();
        var token = Guid.NewGuid().ToString("N")[..10];
        object Body(string subject) => new { message = new { text = "once", subject, from_email = $"shop@{d}", to = new[] { new { email = $"gil@{d}" } } } };

        // Sequential: a retry after a timeout gets the same request and tasks.
        var first = await SendRawAsync(client, Body(token + " seq"), "seq-" + token);
        var again = await SendRawAsync(client, Body(token + " seq"), "seq-" + token);
        Assert.Equal(first, again);

        // Concurrent: one of them stores the request, all answer with it.
        var answers = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => SendRawAsync(client, Body(token + " conc"), "conc-" + token)));
        Assert.Single(answers.Distinct());
        var ids = JsonSerializer.Deserialize<SendEmailResponse>(answers[0], StackFixture.Json)!;

        // The key with another body is refused, not answered with the first message's result.
        using var reused = await PostAsync(client, Body(token + " other"), "seq-" + token);
        await AssertErrorAsync(reused, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "Idempotency-Key");

        await WaitForMailsAsync(m => m.Subject == token + " seq", 1);
        await WaitForMailsAsync(m => m.Subject == token + " conc", 1);
        await WaitForTaskAsync(client, ids.Tasks[0].TaskId, t => t.Status == "sent");
        await Task.Delay(TimeSpan.FromSeconds(2)); // time for a second copy, were there one
        var all = await stack.Mail.ListAsync();
        Assert.Single(all, m => m.Subject == token + " seq");
        Assert.Single(all, m => m.Subject == token + " conc");
    }

    [Fact]
    public async Task SendEmail_SendAt_SchedulesTheMessage_PastMeansNow()
    {
        var (_, client, d) = await TenantClientAsync();
        var token = Guid.NewGuid().ToString("N")[..10];
        // Whole seconds (the seed's format); at least 3 s ahead.
        var sendAt = DateTimeOffset.UtcNow.AddSeconds(4);
        sendAt = new DateTimeOffset(sendAt.Year, sendAt.Month, sendAt.Day, sendAt.Hour, sendAt.Minute, sendAt.Second, TimeSpan.Zero).AddSeconds(1);
        var scheduled = await SendAsync(client, new
        {
            message = new { text = "later", subject = token + " later", from_email = $"shop@{d}", to = new[] { new { email = $"hal@{d}" } } },
            send_at = sendAt.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
        });
        Assert.Equal("scheduled", Assert.Single(scheduled.Tasks).Status);
        var waiting = await GetTaskAsync(client, scheduled.Tasks[0].TaskId);
        Assert.Equal(("scheduled", sendAt), (waiting.Status, waiting.SendAt));

        var past = await SendAsync(client, new
        {
            message = new { text = "now", subject = token + " past", from_email = $"shop@{d}", to = new[] { new { email = $"hal@{d}" } } },
            send_at = "2020-01-01 00:00:00",
        });
        Assert.Equal("queued", Assert.Single(past.Tasks).Status);

        await WaitForMailsAsync(m => m.Subject == token + " later", 1, TimeSpan.FromSeconds(60));
        var sent = await WaitForTaskAsync(client, scheduled.Tasks[0].TaskId, t => t.Status == "sent");
        Assert.True(sent.SentAt >= sendAt, $"sent at {sent.SentAt:O}, before send_at {sendAt:O}");
    }

    [Fact]
    public async Task SendEmail_SuppressedAndMalformedRecipients_AreRejectedAndInvalid()
    {
        var (tenant, client, d) = await TenantClientAsync();
        var token = Guid.NewGuid().ToString("N")[..10];
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        foreach (var (who, reason) in new[] { ("bounced", "hard_bounce"), ("complained", "complaint"), ("left", "unsubscribe"), ("blocked", "manual") })
        {
            await StackFixture.PostAsync<SuppressionResponse>(se, "api/suppressions", new AddSuppressionRequest(null, $"{who}@{d}", reason));
        }
        var answer = await SendAsync(client, new
        {
            message = new
            {
                text = "hi",
                subject = token,
                from_email = $"shop@{d}",
                to = new[]
                {
                    new { email = $"BOUNCED@{d}" }, new { email = $"complained@{d}" }, new { email = $"left@{d}" }, new { email = $"blocked@{d}" },
                    new { email = "not-an-address" }, new { email = $"ok@{d}" },
                },
            },
        });
        Assert.Equal(
            [("rejected", "hard-bounce"), ("rejected", "spam"), ("rejected", "unsub"), ("rejected", "custom"), ("invalid", null), ("queued", null)],
            answer.Tasks.Select(t => (t.Status, t.RejectReason)));
        var mail = Assert.Single(await WaitForMailsAsync(m => m.Subject == token, 1));
        Assert.Equal([$"ok@{d}"], mail.Envelope);
        var request = await StackFixture.ReadAsync<EmailRequestResponse>(await client.GetAsync($"api/v1/email/requests/{answer.RequestId}"), HttpStatusCode.OK);
        Assert.Equal(answer.Tasks.Select(t => t.TaskId), request.Tasks.Select(t => t.TaskId));
        Assert.Equal("invalid", request.Tasks[4].Status);

        // A from_email outside the tenant's sender domains: every task rejected (invalid-sender), nothing sent.
        var foreign = await SendAsync(client, new
        {
            message = new { text = "hi", subject = token + " foreign", from_email = "ceo@bank.example", to = new[] { new { email = $"ok@{d}" }, new { email = "bad" } } },
        });
        Assert.Equal([("rejected", "invalid-sender"), ("invalid", null)], foreign.Tasks.Select(t => (t.Status, t.RejectReason)));
        Assert.Equal("rejected", (await GetTaskAsync(client, foreign.Tasks[0].TaskId)).Status);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.DoesNotContain(await stack.Mail.ListAsync(), m => m.Subject == token + " foreign");
    }

    [Fact]
    public async Task Errors_AreAnsweredInTheSeedShape()
    {
        var (_, client, _) = await TenantClientAsync();
        using var anonymous = stack.SendEngineClient();
        var valid = new { message = new { text = "x", from_email = "a@b.example", to = new[] { new { email = "c@d.example" } } } };

        using (var missing = await anonymous.PostAsJsonAsync("api/v1/email", valid))
        {
            var error = await AssertErrorAsync(missing, HttpStatusCode.Forbidden, "INVALID_API_KEY", "X-Pigeon-Api-Key");
            Assert.Equal(10, error.GetProperty("code").GetInt32());
        }
        using (var wrong = new HttpRequestMessage(HttpMethod.Post, "api/v1/email.json") { Content = JsonContent.Create(valid) })
        {
            wrong.Headers.Add("X-Pigeon-Api-Key", ApiKeyFormat.Prefix + new string('A', 43));
            using var response = await anonymous.SendAsync(wrong);
            Assert.Equal(10, (await AssertErrorAsync(response, HttpStatusCode.Forbidden, "INVALID_API_KEY", "")).GetProperty("code").GetInt32());
        }

        // Every bad field is named.
        using (var bad = await PostAsync(client, new
        {
            message = new
            {
                from_email = "not an address",
                to = new object[] { new { email = "x@y.example" }, new { email = "z@y.example", type = "cc2" }, new { name = "no email" } },
                headers = new Dictionary<string, string> { ["Bad Name"] = "v", ["X-Multi"] = "a\r\nBcc: victim@example.com" },
                merge_language = "jinja",
                global_merge_vars = new[] { new { name = "_secret", content = "x" }, new { name = "nul", content = "a\0b" } },
                metadata = new Dictionary<string, object> { ["order"] = new[] { 1 }, ["bad key!"] = "x" },
                merge_vars = new[] { new { rcpt = "", vars = Array.Empty<object>() } },
                attachments = new[] { new { type = "text/plain", name = "a.txt", content = "!!not base64!!" } },
                images = new[] { new { type = "application/pdf", name = "has space", content = "AAAA" } },
                bcc_address = "nope",
            },
            send_at = "tomorrow",
            callback = new { url = "ftp://example.com/x", type = "sometimes" },
        }))
        {
            var error = await AssertErrorAsync(bad, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "");
            var message = error.GetProperty("message").GetString()!;
            foreach (var field in new[]
            {
                "message.from_email", "message.html", "message.to[1].type", "message.to[2].email", "message.headers.Bad Name",
                "message.headers.X-Multi", "message.merge_language", "message.global_merge_vars[0].name", "message.global_merge_vars[1].content",
                "message.metadata.order", "message.metadata.bad key!", "message.merge_vars[0].rcpt",
                "message.attachments[0].content", "message.images[0].type", "message.images[0].name", "message.bcc_address", "send_at",
                "callback.url", "callback.type",
            })
            {
                Assert.Contains(field + ":", message);
            }
        }
        // A handlebars block left open (or closed by the wrong tag) is refused at once, naming the field.
        using (var open = await PostAsync(client, new
        {
            message = new
            {
                html = "{{#each items}}<li>{{this}}</li>", subject = "{{#if a}}x{{/each}}", text = "{{#if a}}ok{{/if}}",
                from_email = "a@b.example", to = new[] { new { email = "c@d.example" } }, merge_language = "handlebars",
            },
        }))
        {
            var message = (await AssertErrorAsync(open, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "message.html:")).GetProperty("message").GetString()!;
            Assert.Contains("message.subject:", message);
            Assert.DoesNotContain("message.text:", message);
        }
        using (var missingMessage = await PostAsync(client, new { send_at = (string?)null }))
        {
            await AssertErrorAsync(missingMessage, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "message:");
        }
        using (var wrongType = await PostAsync(client, new { message = new { to = "someone@example.com" } }))
        {
            await AssertErrorAsync(wrongType, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "message.to");
        }
        using (var notJson = await client.PostAsync("api/v1/email", new StringContent("{\"message\": ", Encoding.UTF8, "application/json")))
        {
            await AssertErrorAsync(notJson, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "");
        }
        using (var unknownTask = await client.GetAsync($"api/v1/email/{Guid.NewGuid():N}"))
        {
            await AssertErrorAsync(unknownTask, HttpStatusCode.NotFound, "NOT_FOUND", "");
        }
        using (var notAnId = await client.GetAsync("api/v1/email/requests/../../etc"))
        {
            Assert.NotEqual(HttpStatusCode.InternalServerError, notAnId.StatusCode);
        }
        using (var badSearch = await client.GetAsync("api/v1/email?from=yesterday&limit=0&after=zzz"))
        {
            var message = (await AssertErrorAsync(badSearch, HttpStatusCode.BadRequest, "VALIDATION_ERROR", "")).GetProperty("message").GetString()!;
            Assert.Contains("from:", message);
            Assert.Contains("limit:", message);
            Assert.Contains("after:", message);
        }
    }

    [Fact]
    public async Task SizeLimits_AreAnswered413InTheSeedShape()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Transactional:MaxRequestBytes"] = "65536",
            ["Transactional:MaxAttachments"] = "2",
            ["Transactional:MaxAttachmentBytes"] = "1024",
            ["Transactional:Dispatchers"] = "0",
        });
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        object Message(object[] attachments, string text = "x") =>
            new { message = new { text, from_email = "a@b.example", to = new[] { new { email = "c@d.example" } }, attachments } };
        object File(int bytes) => new { type = "application/octet-stream", name = "f.bin", content = Convert.ToBase64String(new byte[bytes]) };

        using (var ok = await PostAsync(client, Message([File(1024), File(10)])))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var total = await PostAsync(client, Message([], new string('x', 70_000))))
        {
            await AssertErrorAsync(total, HttpStatusCode.RequestEntityTooLarge, "REQUEST_TOO_LARGE", "65536");
        }
        using (var count = await PostAsync(client, Message([File(1), File(1), File(1)])))
        {
            await AssertErrorAsync(count, HttpStatusCode.RequestEntityTooLarge, "REQUEST_TOO_LARGE", "At most 2");
        }
        using (var size = await PostAsync(client, Message([File(1025)])))
        {
            await AssertErrorAsync(size, HttpStatusCode.RequestEntityTooLarge, "REQUEST_TOO_LARGE", "1024");
        }
    }

    [Fact]
    public async Task Reads_AreTenantScoped_AndSearchableByMetadata()
    {
        var (_, client, d) = await TenantClientAsync();
        var (_, other, _) = await TenantClientAsync();
        var order = Guid.NewGuid().ToString("N")[..8];
        var from = DateTimeOffset.UtcNow.AddSeconds(-5);
        var a = await SendAsync(client, new
        {
            message = new
            {
                text = "a", subject = "a", from_email = $"shop@{d}", to = new[] { new { email = $"ida@{d}" }, new { email = $"jo@{d}" } },
                metadata = new Dictionary<string, object> { ["order"] = order, ["kind"] = "receipt" },
                recipient_metadata = new[] { new { rcpt = $"jo@{d}", values = new Dictionary<string, object> { ["user_id"] = 123456 } } },
            },
        });
        var b = await SendAsync(client, new
        {
            message = new
            {
                text = "b", subject = "b", from_email = $"shop@{d}", to = new[] { new { email = $"kim@{d}" } },
                metadata = new Dictionary<string, object> { ["order"] = order + "-2", ["kind"] = "receipt" },
            },
        });

        var byOrder = await SearchAsync(client, $"metadata.order={order}");
        Assert.Equal(a.Tasks.Select(t => t.TaskId).Order(), byOrder.Items.Select(t => t.TaskId).Order());
        var byUser = await SearchAsync(client, "metadata.user_id=123456&metadata.order=" + order);
        Assert.Equal(a.Tasks[1].TaskId, Assert.Single(byUser.Items).TaskId);
        var window = "&from=" + Uri.EscapeDataString(from.ToString("O")) + "&to=" + Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("O"));
        var receipts = await SearchAsync(client, "metadata.kind=receipt" + window);
        Assert.Equal(3, receipts.Items.Count);
        Assert.Empty((await SearchAsync(client, "metadata.kind=receipt&to=" + Uri.EscapeDataString(from.ToString("O")))).Items);

        // Paged, newest first, the cursor picks up where the page ended.
        var seen = new List<string>();
        string? after = null;
        do
        {
            var page = await SearchAsync(client, "metadata.kind=receipt&limit=1" + window + (after is null ? "" : "&after=" + after));
            seen.AddRange(page.Items.Select(t => t.TaskId));
            after = page.NextCursor;
        }
        while (after is not null && seen.Count < 10);
        Assert.Equal(receipts.Items.Select(t => t.TaskId), seen);
        Assert.Equal(b.Tasks[0].TaskId, seen[0]);

        // Another tenant's ids look like ids that do not exist; its search finds nothing of ours.
        using (var task = await other.GetAsync($"api/v1/email/{a.Tasks[0].TaskId}"))
        {
            await AssertErrorAsync(task, HttpStatusCode.NotFound, "NOT_FOUND", "");
        }
        using (var request = await other.GetAsync($"api/v1/email/requests/{a.RequestId}"))
        {
            await AssertErrorAsync(request, HttpStatusCode.NotFound, "NOT_FOUND", "");
        }
        Assert.Empty((await SearchAsync(other, $"metadata.order={order}")).Items);
        Assert.Equal(a.Tasks[0].TaskId, (await GetTaskAsync(client, a.Tasks[0].TaskId + ".json")).TaskId);
    }

    [Fact]
    public async Task Delivery_ClaimsIntoALeaseOnTheDeliveryRow_AnExpiredLeaseIsUnknownNeverResent_ADueRowIsSentOnce()
    {
        var (_, client, d) = await TenantClientAsync();
        var token = Guid.NewGuid().ToString("N")[..10];
        // Scheduled far ahead so the dispatcher leaves them alone until the rows are set up as a dead dispatcher left them.
        var answer = await SendAsync(client, new
        {
            message = new { text = "hi", subject = token, from_email = $"shop@{d}", to = new[] { new { email = $"died@{d}" }, new { email = $"waiting@{d}" } } },
            send_at = DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
        });
        var (died, waiting) = (Guid.Parse(answer.Tasks[0].TaskId), Guid.Parse(answer.Tasks[1].TaskId));
        await using (var conn = new Npgsql.NpgsqlConnection(stack.SendEngineConnectionString))
        {
            await conn.OpenAsync();
            // The intake queued one delivery row per open task; the wide task row carries no queue state.
            await using (var check = new Npgsql.NpgsqlCommand("SELECT count(*) FROM transactional_deliveries WHERE task_id IN ($1, $2) AND lease_until IS NULL", conn))
            {
                check.Parameters.Add(new Npgsql.NpgsqlParameter { Value = died });
                check.Parameters.Add(new Npgsql.NpgsqlParameter { Value = waiting });
                Assert.Equal(2L, await check.ExecuteScalarAsync());
            }
            // died: claimed into sending by a dispatcher whose lease has run out; waiting: simply due now.
            await using var cmd = new Npgsql.NpgsqlCommand("""
                UPDATE transactional_deliveries SET due_at = now() - interval '2 seconds',
                    lease_until = CASE WHEN task_id = $1 THEN now() - interval '1 second' END
                WHERE task_id IN ($1, $2)
                """, conn);
            cmd.Parameters.Add(new Npgsql.NpgsqlParameter { Value = died });
            cmd.Parameters.Add(new Npgsql.NpgsqlParameter { Value = waiting });
            Assert.Equal(2, await cmd.ExecuteNonQueryAsync());
        }
        // sending with an expired lease: the message may have gone out, so it is unknown and never sent (again).
        var unknown = await WaitForTaskAsync(client, answer.Tasks[0].TaskId, t => t.Status == "unknown");
        Assert.Equal(0, unknown.Attempts);
        Assert.StartsWith("outcome unknown", unknown.Detail);
        var sent = await WaitForTaskAsync(client, answer.Tasks[1].TaskId, t => t.Status == "sent");
        Assert.Equal(1, sent.Attempts);
        await WaitForMailsAsync(m => m.Subject == token, 1);
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal([$"waiting@{d}"], (await WaitForMailsAsync(m => m.Subject == token, 1)).SelectMany(m => m.Envelope));
        // Final tasks leave the queue.
        await using (var conn = new Npgsql.NpgsqlConnection(stack.SendEngineConnectionString))
        {
            await conn.OpenAsync();
            await using var left = new Npgsql.NpgsqlCommand("SELECT count(*) FROM transactional_deliveries WHERE task_id IN ($1, $2)", conn);
            left.Parameters.Add(new Npgsql.NpgsqlParameter { Value = died });
            left.Parameters.Add(new Npgsql.NpgsqlParameter { Value = waiting });
            Assert.Equal(0L, await left.ExecuteScalarAsync());
        }

        // A new request is claimed and sent.
        var fresh = await SendAsync(client, new { message = new { text = "hi", subject = token + " fresh", from_email = $"shop@{d}", to = new[] { new { email = $"fresh@{d}" } } } });
        Assert.Equal(1, (await WaitForTaskAsync(client, fresh.Tasks[0].TaskId, t => t.Status == "sent")).Attempts);
    }

    [Fact]
    public async Task Delivery_RetriesTransientRefusals_SuppressesRefusedMailboxes_NeverRetriesALostReply()
    {
        await using var relay = await FaultSmtpServer.StartAsync("--rcpt-reply", "451 4.7.1 try again later");
        var tenant = await stack.CreateTenantAsync();
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            ["Smtp:CommandTimeout"] = "00:00:03",
            ["Smtp:DataTimeout"] = "00:00:03",
            ["Transactional:RetryBaseDelay"] = "00:00:00.200",
            ["Transactional:OutageRetryDelay"] = "00:00:00.500",
            ["Transactional:PollInterval"] = "00:00:00.100",
        });
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var d = StackFixture.UniqueDomain();
        using (var bearer = engine.CreateClient())
        {
            bearer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
            await RegisterDomainAsync(bearer, d);
        }
        object To(string local) => new { message = new { text = "hi", subject = local, from_email = $"shop@{d}", to = new[] { new { email = $"{local}@{d}" } } } };

        // 4xx to RCPT: the first attempt and 3 retries, then rejected as a soft bounce.
        var deferred = await SendAsync(client, To("busy"));
        var gaveUp = await WaitForTaskAsync(client, deferred.Tasks[0].TaskId, t => t.Status == "rejected");
        Assert.Equal(("soft-bounce", 4), (gaveUp.RejectReason, gaveUp.Attempts));
        Assert.Contains("451 4.7.1", gaveUp.Detail);

        // 5.1.1: rejected as a hard bounce, and the address joins the suppressions: the next request is refused at once.
        await relay.SetAsync("rcpt_reply", "550 5.1.1 no such user");
        var refused = await SendAsync(client, To("gone"));
        var bounced = await WaitForTaskAsync(client, refused.Tasks[0].TaskId, t => t.Status == "rejected");
        Assert.Equal(("hard-bounce", 1), (bounced.RejectReason, bounced.Attempts));
        var again = await SendAsync(client, To("gone"));
        Assert.Equal(("rejected", "hard-bounce"), (again.Tasks[0].Status, again.Tasks[0].RejectReason));

        // The relay down: not an attempt, the task waits and goes out once it is back.
        await relay.SetAsync("rcpt_reply", "-");
        await relay.StopListeningAsync();
        var waiting = await SendAsync(client, To("patient"));
        await Task.Delay(TimeSpan.FromSeconds(2));
        var queued = await GetTaskAsync(client, waiting.Tasks[0].TaskId);
        Assert.Contains(queued.Status, new[] { "queued", "sending" }); // between two tries, or in one that will fail to connect
        Assert.Equal(0, queued.Attempts);
        await relay.StartListeningAsync();
        Assert.Equal(1, (await WaitForTaskAsync(client, waiting.Tasks[0].TaskId, t => t.Status == "sent")).Attempts);

        // The connection dropped after the whole message went out: unknown, and never a second copy.
        await relay.SetAsync("drop_after_data", "1");
        var lost = await SendAsync(client, To("lost"));
        var unknown = await WaitForTaskAsync(client, lost.Tasks[0].TaskId, t => t.Status == "unknown");
        Assert.StartsWith("outcome unknown", unknown.Detail);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(relay.Accepted, a => a.Recipient == $"lost@{d}");
        Assert.Equal("unknown", (await GetTaskAsync(client, lost.Tasks[0].TaskId)).Status);
    }

    [Fact]
    public async Task Delivery_InGroups_SendsEachRecipientOnce_AndRecordsEachTasksOwnResult()
    {
        await using var relay = await FaultSmtpServer.StartAsync();
        var tenant = await stack.CreateTenantAsync();
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            // 7 recipients in groups of 3: two full groups and one of a single task, each marked and recorded together.
            ["Transactional:GroupSize"] = "3",
            ["Transactional:Dispatchers"] = "1",
        });
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var d = StackFixture.UniqueDomain();
        using (var bearer = engine.CreateClient())
        {
            bearer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
            await RegisterDomainAsync(bearer, d);
        }
        var recipients = Enumerable.Range(1, 7).Select(i => $"r{i}@{d}").ToArray();
        var answer = await SendAsync(client, new { message = new { text = "hi", subject = "groups", from_email = $"shop@{d}",
            to = recipients.Select(r => new { email = r }).ToArray() } });
        Assert.Equal(7, answer.Tasks.Count);

        var tasks = new List<EmailTaskResponse>();
        foreach (var t in answer.Tasks)
        {
            tasks.Add(await WaitForTaskAsync(client, t.TaskId, x => x.Status == "sent"));
        }
        foreach (var t in tasks)
        {
            Assert.Equal(1, t.Attempts);
            // sent_at is when this task's relay answered, recorded with its group: after the request, and the task's end.
            Assert.NotNull(t.SentAt);
            Assert.True(t.SentAt >= t.CreatedAt, $"{t.Email}: sent_at {t.SentAt:O} before created_at {t.CreatedAt:O}");
            Assert.Equal(t.SentAt, t.FinishedAt);
        }
        await Task.Delay(TimeSpan.FromSeconds(1)); // time for a second copy, were there one
        Assert.Equal(recipients.Order(), relay.Accepted.Select(a => a.Recipient).Order());
        Assert.Equal(7, relay.Accepted.Select(a => a.MessageId).Distinct().Count());
    }

    [Fact]
    public async Task Delivery_KeepsTheConnectionAcrossBatches_ReplacesOneTheRelayClosed_ClosesItWhenIdle()
    {
        await using var relay = await FaultSmtpServer.StartAsync();
        var tenant = await stack.CreateTenantAsync();
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            ["Transactional:Dispatchers"] = "1",
            ["Transactional:PollInterval"] = "00:00:00.200",
            // Long enough that only a relay-side close can end the kept connection before the last step, even on a loaded CI machine.
            ["Transactional:SessionIdleTimeout"] = "00:00:20",
            // Were the closed connection taken for an outage, the task would wait this long: far beyond the wait below.
            ["Transactional:OutageRetryDelay"] = "00:05:00",
        });
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var d = StackFixture.UniqueDomain();
        using (var bearer = engine.CreateClient())
        {
            bearer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
            await RegisterDomainAsync(bearer, d);
        }
        async Task<EmailTaskResponse> SendOneAsync(string local)
        {
            var answer = await SendAsync(client, new { message = new { text = "hi", subject = local, from_email = $"shop@{d}", to = new[] { new { email = $"{local}@{d}" } } } });
            return await WaitForTaskAsync(client, answer.Tasks[0].TaskId, t => t.Status is "sent" or "rejected" or "unknown");
        }

        // Three requests one after the other, each its own batch: one connection for all of them.
        foreach (var local in new[] { "first", "second", "third" })
        {
            Assert.Equal("sent", (await SendOneAsync(local)).Status);
        }
        Assert.Equal(1, relay.Connections);

        // The relay drops the kept connection (a restart, its idle timeout): nothing was handed over on it, so the next
        // task goes out on a new connection at once, one attempt, one copy.
        await relay.StopListeningAsync();
        await relay.StartListeningAsync();
        var afterClose = await SendOneAsync("after-close");
        Assert.Equal(("sent", 1), (afterClose.Status, afterClose.Attempts));
        Assert.Equal(2, relay.Connections);

        // Idle past SessionIdleTimeout: the connection is closed, and the next batch opens a new one.
        await Task.Delay(TimeSpan.FromSeconds(21));
        Assert.Equal("sent", (await SendOneAsync("after-idle")).Status);
        Assert.Equal(3, relay.Connections);
        await Task.Delay(TimeSpan.FromSeconds(1)); // time for a second copy, were there one
        Assert.Equal(new[] { "first", "second", "third", "after-close", "after-idle" }.Select(l => $"{l}@{d}").Order(),
            relay.Accepted.Select(a => a.Recipient).Order());
    }

    [Fact]
    public async Task TencentSes_DeliversTransactionalMail_AndItsEventsFindTheTask()
    {
        const string secretKey = "tencent-secret-key-for-tests";
        await using var ses = new TencentSesStandIn("AKIDtest", secretKey);
        var tenant = await stack.CreateTenantAsync();
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Delivery:TenantTransports:" + tenant.TenantId] = "tencent",
            ["TencentSes:SecretId"] = "AKIDtest",
            ["TencentSes:SecretKey"] = secretKey,
            ["TencentSes:Endpoint"] = ses.Url,
            ["EmailEvents:PollInterval"] = "00:00:00.100",
        });
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var d = StackFixture.UniqueDomain();
        using (var bearer = engine.CreateClient())
        {
            bearer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
            await RegisterDomainAsync(bearer, d);
        }
        var answer = await SendAsync(client, new
        {
            message = new
            {
                html = "<p>*|NAME|*</p>", subject = "Receipt", from_email = $"shop@{d}", from_name = "Shop",
                to = new[] { new { email = $"lee@{d}" } }, bcc_address = $"audit@{d}",
                headers = new Dictionary<string, string> { ["X-Order-Id"] = "7" },
                global_merge_vars = new[] { new { name = "name", content = "Lee" } },
            },
        });
        var sent = await WaitForTaskAsync(client, answer.Tasks[0].TaskId, t => t.Status == "sent");
        var call = Assert.Single(ses.Calls);
        Assert.True(call.SignatureValid);
        Assert.Equal([$"lee@{d}", $"audit@{d}"], call.Destination);
        Assert.Equal(("Receipt", "<p>Lee</p>"), (call.Subject, call.Html));
        Assert.Equal("7", call.SmtpHeaders["X-Order-Id"]);
        Assert.EndsWith("@" + d + ">", call.SmtpMessageId);

        // Tencent's MessageId (the webhook's bulkId) finds the task.
        using var hook = engine.CreateClient();
        var eventBody = JsonSerializer.Serialize(new
        {
            @event = "delivered", email = $"lee@{d}", bulkId = call.Answer, timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        });
        using (var posted = await hook.PostAsync("api/tencent/ses/webhook", new StringContent(eventBody, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        }
        var delivered = await WaitForTaskAsync(client, sent.TaskId, t => t.Status == "delivered");
        Assert.Equal("delivered", Assert.Single(delivered.Events).Type);
    }

    [Fact]
    public async Task Swagger_DescribesTheTransactionalApi()
    {
        using var se = stack.SendEngineClient();
        se.DefaultRequestHeaders.Authorization = StackFixture.ManagementAuthorization;
        var paths = JsonDocument.Parse(await se.GetStringAsync("swagger/v1/swagger.json")).RootElement.GetProperty("paths");
        foreach (var (path, id) in new[] { ("/api/v1/email", "sendEmail"), ("/api/v1/email.json", "sendEmailJson") })
        {
            var post = paths.GetProperty(path).GetProperty("post");
            Assert.Equal(id, post.GetProperty("operationId").GetString());
            Assert.True(post.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
            Assert.True(post.GetProperty("responses").TryGetProperty("413", out _));
        }
        Assert.Equal("getEmailTask", paths.GetProperty("/api/v1/email/{task_id}").GetProperty("get").GetProperty("operationId").GetString());
        Assert.Equal("getEmailRequest", paths.GetProperty("/api/v1/email/requests/{request_id}").GetProperty("get").GetProperty("operationId").GetString());
        Assert.Equal("searchEmailTasks", paths.GetProperty("/api/v1/email").GetProperty("get").GetProperty("operationId").GetString());
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>A tenant with an API key and a registered sender domain (its own), and a client sending that key.</summary>
    private async Task<(TestTenant Tenant, HttpClient Client, string Domain)> TenantClientAsync()
    {
        var tenant = await stack.CreateTenantAsync();
        var client = stack.SendEngineClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var domain = StackFixture.UniqueDomain();
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        await RegisterDomainAsync(se, domain);
        return (tenant, client, domain);
    }

    private static async Task RegisterDomainAsync(HttpClient bearer, string domain)
    {
        using var response = await bearer.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(domain), StackFixture.Json);
        Assert.True(response.IsSuccessStatusCode, $"POST api/sender-domains answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }


    private static Task<HttpResponseMessage> PostAsync(HttpClient client, object body, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/email") { Content = JsonContent.Create(body) };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        return client.SendAsync(request);
    }

    private static async Task<string> SendRawAsync(HttpClient client, object body, string? idempotencyKey = null)
    {
        using var response = await PostAsync(client, body, idempotencyKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"POST /api/v1/email answered {(int)response.StatusCode}: {text}");
        return text;
    }

    private static async Task<SendEmailResponse> SendAsync(HttpClient client, object body) =>
        JsonSerializer.Deserialize<SendEmailResponse>(await SendRawAsync(client, body), StackFixture.Json)!;

    private static async Task<EmailTaskResponse> GetTaskAsync(HttpClient client, string taskId) =>
        await StackFixture.ReadAsync<EmailTaskResponse>(await client.GetAsync($"api/v1/email/{taskId}"), HttpStatusCode.OK);

    private static async Task<EmailTaskPage> SearchAsync(HttpClient client, string query) =>
        await StackFixture.ReadAsync<EmailTaskPage>(await client.GetAsync("api/v1/email?" + query), HttpStatusCode.OK);

    private static async Task<EmailTaskResponse> WaitForTaskAsync(HttpClient client, string taskId, Func<EmailTaskResponse, bool> done)
    {
        var sw = Stopwatch.StartNew();
        EmailTaskResponse last;
        do
        {
            last = await GetTaskAsync(client, taskId);
            if (done(last))
            {
                return last;
            }
            await Task.Delay(200);
        }
        while (sw.Elapsed < TimeSpan.FromSeconds(60));
        throw new TimeoutException($"task {taskId} did not reach the expected state; last: {JsonSerializer.Serialize(last, StackFixture.Json)}\n{ServiceLogs.Dump()}");
    }

    /// <summary>The seed's error body: asserts status, JSON (not problem+json), name, and that the message contains <paramref name="contains"/>.</summary>
    private static async Task<JsonElement> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string name, string contains)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(name, error.GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Number, error.GetProperty("code").ValueKind);
        Assert.Contains(contains, error.GetProperty("message").GetString());
        return error.Clone();
    }

    private sealed record Received(string Id, string Subject, List<string> Envelope, string Source, MimeMessage Mime);

    /// <summary>maildev's messages matching <paramref name="match"/> (subject), with their envelope and parsed MIME, once <paramref name="count"/> are in.</summary>
    private async Task<List<Received>> WaitForMailsAsync(Func<Received, bool> match, int count, TimeSpan? timeout = null)
    {
        using var http = new HttpClient { BaseAddress = stack.Mail.WebUri };
        var sw = Stopwatch.StartNew();
        var found = new List<Received>();
        while (sw.Elapsed < (timeout ?? TimeSpan.FromSeconds(60)))
        {
            found.Clear();
            var list = JsonDocument.Parse(await http.GetStringAsync("api/email")).RootElement;
            foreach (var m in list.EnumerateArray())
            {
                var subject = m.TryGetProperty("subject", out var s) ? s.GetString() ?? "" : "";
                var envelope = m.GetProperty("envelope").GetProperty("to").EnumerateArray().Select(t => t.GetProperty("address").GetString()!).ToList();
                var candidate = new Received(m.GetProperty("id").GetString()!, subject, envelope, "", null!);
                if (match(candidate))
                {
                    var source = await stack.Mail.GetSourceAsync(candidate.Id);
                    found.Add(candidate with { Source = source, Mime = MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(source))) });
                }
            }
            if (found.Count >= count)
            {
                return found;
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"{found.Count} of {count} messages arrived\n{ServiceLogs.Dump()}");
    }

    private static string Decode(MimePart part) => Encoding.UTF8.GetString(DecodeBytes(part));

    private static byte[] DecodeBytes(MimePart part)
    {
        using var stream = new MemoryStream();
        part.Content!.DecodeTo(stream);
        return stream.ToArray();
    }
}
