using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using MemberCenter.Features.Reader;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>Preference fields, branding, the language of reader pages and the confirmation mail (issue 15 part 2).</summary>
[Collection(MemberCenterCollection.Name)]
public sealed partial class ReaderSettingsTests(MemberCenterFixture mc)
{
    private static readonly ReaderText Strings = new();

    private static string NewEmail() => $"reader-{Guid.NewGuid():N}@example.com";

    /// <summary>Topics (multiple, labelled in all five languages), a required frequency, a boolean and a text field.</summary>
    internal static object Fields(string? defaultLanguage = null) => new
    {
        default_language = defaultLanguage,
        fields = new object[]
        {
            new
            {
                key = "topics", type = "multiple_choice", required = false,
                labels = Labels("Topics", "主題", "主题", "トピック", "주제"),
                choices = new object[]
                {
                    new { value = "tech", labels = Labels("Technology", "科技", "科技", "テクノロジー", "기술") },
                    new { value = "art", labels = Labels("Art", "藝術", "艺术", "アート", "예술") },
                },
            },
            new
            {
                key = "frequency", type = "single_choice", required = true,
                labels = Labels("How often", "頻率", "频率", "頻度", "빈도"),
                choices = new object[]
                {
                    new { value = "daily", labels = Labels("Daily", "每日", "每日", "毎日", "매일") },
                    new { value = "weekly", labels = Labels("Weekly", "每週", "每周", "毎週", "매주") },
                },
            },
            new { key = "digest", type = "boolean", required = false, labels = Labels("Send a digest", "寄送摘要", "发送摘要", "ダイジェストを送る", "요약 보내기") },
            new { key = "nickname", type = "text", required = false, labels = new Dictionary<string, string> { ["en"] = "Nickname" } },
        },
    };

    internal static Dictionary<string, string> Labels(string en, string zhTw, string zhCn, string ja, string ko) =>
        new() { ["en"] = en, ["zh-TW"] = zhTw, ["zh-CN"] = zhCn, ["ja"] = ja, ["ko"] = ko };

    internal static async Task PutFieldsAsync(TestTenant tenant, object body)
    {
        using var api = tenant.Api();
        await MemberCenterFixture.ReadAsync<PreferenceFieldsResponse>(await api.PutAsJsonAsync($"api/lists/{tenant.ListId}/preference-fields", body));
    }

    private static async Task<Dictionary<string, string[]>> ErrorsAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("errors").Deserialize<Dictionary<string, string[]>>()!;
    }

    [Fact]
    public async Task Preference_fields_refuse_duplicate_keys_unknown_languages_and_choiceless_choice_fields()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        using var response = await api.PutAsJsonAsync($"api/lists/{tenant.ListId}/preference-fields", new
        {
            default_language = "fr",
            fields = new object[]
            {
                new { key = "topics", type = "multiple_choice", labels = new Dictionary<string, string> { ["xx"] = "?" }, choices = new[] { new { value = "a" } } },
                new { key = "topics", type = "text" },
                new { key = "size", type = "single_choice" },
                new { key = "lang", type = "text" },
                new { key = "kind", type = "colour" },
                new { key = "pick", type = "single_choice", choices = new[] { new { value = "x" }, new { value = "x" } } },
            },
        });
        var errors = await ErrorsAsync(response);
        Assert.Contains("default_language", errors.Keys);
        Assert.Contains("fields[0].labels", errors.Keys);
        Assert.Contains("used by another field", errors["fields[1].key"].Single());
        Assert.Contains("fields[2].choices", errors.Keys);
        Assert.Contains("fields[3].key", errors.Keys);
        Assert.Contains("fields[4].type", errors.Keys);
        Assert.Contains("fields[5].choices[1].value", errors.Keys);

        // Nothing was stored; a good document is, and reads back as sent.
        var empty = await api.GetFromJsonAsync<PreferenceFieldsResponse>($"api/lists/{tenant.ListId}/preference-fields", MemberCenterFixture.Json);
        Assert.Empty(empty!.Fields);
        Assert.Equal("en", empty.DefaultLanguage);
        await PutFieldsAsync(tenant, Fields("ja"));
        var stored = await api.GetFromJsonAsync<PreferenceFieldsResponse>($"api/lists/{tenant.ListId}/preference-fields", MemberCenterFixture.Json);
        Assert.Equal("ja", stored!.DefaultLanguage);
        Assert.Equal(["topics", "frequency", "digest", "nickname"], stored.Fields.Select(f => f.Key));
        Assert.Equal("トピック", stored.Fields[0].Labels!["ja"]);
        Assert.Equal("예술", stored.Fields[0].Choices![1].Labels!["ko"]);
    }

    [Fact]
    public async Task Branding_refuses_bad_colours_http_logos_unknown_languages_and_mail_without_link()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        using var response = await api.PutAsJsonAsync("api/branding", new
        {
            display_name = "Acme",
            logo_url = "http://cdn.example.com/logo.png",
            primary_color = "blue",
            accent_color = "#12345",
            confirmation_mail = new Dictionary<string, object>
            {
                ["de"] = new { subject = "Bitte bestätigen", text = "{link}" },
                ["ja"] = new { subject = "確認", text = "リンクがありません" },
            },
        });
        var errors = await ErrorsAsync(response);
        Assert.Contains("logo_url", errors.Keys);
        Assert.Contains("primary_color", errors.Keys);
        Assert.Contains("accent_color", errors.Keys);
        Assert.Contains("confirmation_mail.de", errors.Keys);
        Assert.Contains("confirmation_mail.ja.text", errors.Keys);

        using var good = await api.PutAsJsonAsync("api/branding", new
        {
            display_name = "Acme",
            logo_url = "https://cdn.example.com/logo.png",
            primary_color = "#1D4ED8",
            footer_text = "Acme Newsletters",
            postal_address = "1 Main St, Springfield",
        });
        var stored = await MemberCenterFixture.ReadAsync<BrandingResponse>(good);
        Assert.Equal("#1d4ed8", stored.PrimaryColor);
        Assert.Equal("1 Main St, Springfield", (await api.GetFromJsonAsync<BrandingResponse>("api/branding", MemberCenterFixture.Json))!.PostalAddress);
    }

    [Fact]
    public async Task Another_tenants_list_is_404_and_the_admin_sets_any_tenants_branding()
    {
        var a = await mc.CreateTenantAsync();
        var b = await mc.CreateTenantAsync();
        using var api = b.Api();
        using (var read = await api.GetAsync($"api/lists/{a.ListId}/preference-fields"))
        {
            Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        }
        using (var write = await api.PutAsJsonAsync($"api/lists/{a.ListId}/preference-fields", Fields()))
        {
            Assert.Equal(HttpStatusCode.NotFound, write.StatusCode);
        }

        using var admin = mc.Http(await mc.AdminTokenAsync());
        await MemberCenterFixture.ReadAsync<BrandingResponse>(await admin.PutAsJsonAsync($"admin/tenants/{a.TenantId}/branding", new { display_name = "Set by operator" }));
        await MemberCenterFixture.ReadAsync<PreferenceFieldsResponse>(await admin.PutAsJsonAsync($"admin/tenants/{a.TenantId}/lists/{a.ListId}/preference-fields", Fields("ko")));
        using var aApi = a.Api();
        Assert.Equal("Set by operator", (await aApi.GetFromJsonAsync<BrandingResponse>("api/branding", MemberCenterFixture.Json))!.DisplayName);
        Assert.Equal("ko", (await aApi.GetFromJsonAsync<PreferenceFieldsResponse>($"api/lists/{a.ListId}/preference-fields", MemberCenterFixture.Json))!.DefaultLanguage);
        Assert.Null((await api.GetFromJsonAsync<BrandingResponse>("api/branding", MemberCenterFixture.Json))!.DisplayName);
        using var wrongList = await admin.GetAsync($"admin/tenants/{b.TenantId}/lists/{a.ListId}/preference-fields");
        Assert.Equal(HttpStatusCode.NotFound, wrongList.StatusCode);
    }

    [Fact]
    public async Task Preferences_are_checked_against_the_lists_fields_and_free_form_lists_stay_free()
    {
        var tenant = await mc.CreateTenantAsync();
        await PutFieldsAsync(tenant, Fields());
        using var api = tenant.Api();

        async Task<Dictionary<string, string[]>> Refused(object preferences, string path = "newsletter/subscribe") =>
            await ErrorsAsync(await api.PostAsJsonAsync(path, new { list_id = tenant.ListId, email = NewEmail(), preferences }));

        Assert.Contains("colour", (await Refused(new { frequency = "daily", colour = "red" }))["preferences.colour"].Single());
        Assert.Contains("preferences.frequency", (await Refused(new { frequency = "hourly" })).Keys);
        Assert.Contains("preferences.topics", (await Refused(new { frequency = "daily", topics = new[] { "tech", "cooking" } })).Keys);
        Assert.Contains("preferences.digest", (await Refused(new { frequency = "daily", digest = "yes" })).Keys);
        Assert.Contains("preferences.lang", (await Refused(new { frequency = "daily", lang = "fr" })).Keys);
        Assert.Contains("required", (await Refused(new { topics = new[] { "art" } }))["preferences.frequency"].Single());

        var email = NewEmail();
        await tenant.SubscribeAsync(email, new { frequency = "weekly", topics = new[] { "tech", "art" }, digest = true, lang = "zh-TW" });
        using var removeRequired = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email, preferences = new Dictionary<string, object?> { ["frequency"] = null } });
        Assert.Contains("preferences.frequency", (await ErrorsAsync(removeRequired)).Keys);
        using var change = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email, preferences = new { frequency = "daily", nickname = "Ann" } });
        Assert.Equal(HttpStatusCode.OK, change.StatusCode);

        // A list without fields takes anything, as before.
        var free = await mc.CreateTenantAsync();
        await free.SubscribeAsync(NewEmail(), new { colour = "red", anything = new[] { 1, 2 } });
    }

    [GeneratedRegex("<html lang=\"([^\"]+)\"")]
    private static partial Regex HtmlLang();

    private async Task<string> PageLanguageAsync(string path, string? acceptLanguage)
    {
        using var http = mc.Http();
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (acceptLanguage is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept-Language", acceptLanguage);
        }
        using var response = await http.SendAsync(request);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return HtmlLang().Match(html).Groups[1].Value;
    }

    [Fact]
    public async Task The_page_language_is_the_lang_preference_then_accept_language_then_the_lists_default_then_english()
    {
        var tenant = await mc.CreateTenantAsync();
        var withLang = NewEmail();
        var without = NewEmail();
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(withLang, new { lang = "ja" })).ConfirmToken!);
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(without)).ConfirmToken!);
        var manageWithLang = $"newsletter/manage?token={await tenant.UnsubscribeTokenAsync(withLang)}";
        var manageWithout = $"newsletter/manage?token={await tenant.UnsubscribeTokenAsync(without)}";

        Assert.Equal("en", await PageLanguageAsync(manageWithout, null));
        Assert.Equal("ja", await PageLanguageAsync(manageWithLang, "ko-KR,ko;q=0.9"));
        Assert.Equal("ko", await PageLanguageAsync(manageWithout, "ko-KR,ko;q=0.9,en;q=0.5"));
        Assert.Equal("zh-TW", await PageLanguageAsync(manageWithout, "fr, zh-Hant;q=0.8, ja;q=0.7"));
        Assert.Equal("en", await PageLanguageAsync(manageWithout, "fr, de;q=0.5"));

        // The list's default comes after the browser's choice and before English.
        await PutFieldsAsync(tenant, new { default_language = "zh-CN", fields = Array.Empty<object>() });
        Assert.Equal("zh-CN", await PageLanguageAsync(manageWithout, null));
        Assert.Equal("zh-CN", await PageLanguageAsync(manageWithout, "fr"));
        Assert.Equal("ko", await PageLanguageAsync(manageWithout, "ko"));
        Assert.Equal("ja", await PageLanguageAsync(manageWithLang, "ko"));

        var page = await (await mc.Http().GetAsync(manageWithLang)).Content.ReadAsStringAsync();
        Assert.Contains(Strings.For("ja")["manage.title"], page);
        Assert.Contains(">言語", page); // the built-in lang key is labelled, not shown raw
    }

    [Fact]
    public async Task A_script_in_the_tenant_name_labels_and_footer_is_encoded()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        await MemberCenterFixture.ReadAsync<BrandingResponse>(await api.PutAsJsonAsync("api/branding", new
        {
            display_name = "<script>alert('name')</script>",
            footer_text = "</footer><script>alert('footer')</script>",
            postal_address = "<img src=x onerror=alert(1)>",
        }));
        await PutFieldsAsync(tenant, new
        {
            fields = new object[]
            {
                new
                {
                    key = "topics", type = "single_choice",
                    labels = new Dictionary<string, string> { ["en"] = "<script>alert('label')</script>" },
                    choices = new[] { new { value = "\"><script>alert('value')</script>", labels = new Dictionary<string, string> { ["en"] = "<b>bold</b>" } } },
                },
            },
        });
        var email = NewEmail();
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email)).ConfirmToken!);
        var token = await tenant.UnsubscribeTokenAsync(email);
        using var http = mc.Http();
        foreach (var path in new[] { $"newsletter/manage?token={token}", $"newsletter/unsubscribe?token={token}" })
        {
            var html = await (await http.GetAsync(path)).Content.ReadAsStringAsync();
            Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("&lt;script&gt;alert(", html);
        }
        var manage = await (await http.GetAsync($"newsletter/manage?token={token}")).Content.ReadAsStringAsync();
        Assert.DoesNotContain("<b>bold", manage);
        Assert.Contains("&lt;b&gt;bold&lt;/b&gt;", manage);

        // The confirmation mail's HTML part is encoded the same way.
        var pending = NewEmail();
        await tenant.SubscribeAsync(pending);
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(pending), TimeSpan.FromSeconds(30));
        Assert.DoesNotContain("<script", mail.Html!, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img", mail.Html!, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task The_confirmation_mail_is_in_the_subscribers_language_with_the_tenants_text()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        await MemberCenterFixture.ReadAsync<BrandingResponse>(await api.PutAsJsonAsync("api/branding", new
        {
            display_name = "Acme",
            footer_text = "Acme Corp",
            postal_address = "1 Main St, Springfield",
            confirmation_mail = new Dictionary<string, object>
            {
                ["ja"] = new { subject = "【Acme】{list} の購読確認", text = "{list} をご購読いただきありがとうございます。\n\n確認はこちら：{link}" },
            },
        }));

        var ja = NewEmail();
        await tenant.SubscribeAsync(ja, new { lang = "ja" });
        var jaMail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(ja), TimeSpan.FromSeconds(30));
        Assert.Equal("【Acme】Weekly の購読確認", jaMail.Subject);
        Assert.Contains("Weekly をご購読いただきありがとうございます。", jaMail.Text);
        Assert.Matches("確認はこちら：http://[^ ]+/newsletter/confirm\\?token=", jaMail.Text!);
        Assert.Contains("1 Main St, Springfield", jaMail.Text);
        Assert.Contains("lang=\"ja\"", jaMail.Html);
        Assert.Contains(Strings.For("ja")["mail.button"], jaMail.Html);

        // No tenant text in Korean: the built-in Korean mail.
        var ko = NewEmail();
        await tenant.SubscribeAsync(ko, new { lang = "ko" });
        var koMail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(ko), TimeSpan.FromSeconds(30));
        Assert.Equal("Weekly 구독을 확인해 주세요", koMail.Subject);
        Assert.Contains("확인하려면 다음 링크를 여세요: http", koMail.Text);

        // Without a lang preference: the list's default language.
        await PutFieldsAsync(tenant, new { default_language = "zh-CN", fields = Array.Empty<object>() });
        var zh = NewEmail();
        await tenant.SubscribeAsync(zh);
        var zhMail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(zh), TimeSpan.FromSeconds(30));
        Assert.Equal("请确认您订阅 Weekly", zhMail.Subject);
    }

    [Fact]
    public async Task The_confirmation_mail_follows_the_subscribe_requests_accept_language_after_the_lang_preference_and_before_the_lists_default()
    {
        var tenant = await mc.CreateTenantAsync();
        await PutFieldsAsync(tenant, new { default_language = "ja", fields = Array.Empty<object>() });
        using var api = tenant.Api();

        async Task<Newsletter.TestSupport.ReceivedMail> SubscribeAsync(string? acceptLanguage, object? preferences)
        {
            var email = NewEmail();
            using var request = new HttpRequestMessage(HttpMethod.Post, "newsletter/subscribe")
            {
                Content = JsonContent.Create(new { list_id = tenant.ListId, email, preferences }),
            };
            if (acceptLanguage is not null)
            {
                request.Headers.AcceptLanguage.ParseAdd(acceptLanguage);
            }
            await MemberCenterFixture.ReadAsync<SubscribeResponse>(await api.SendAsync(request));
            return await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        }

        // The reader's browser (forwarded by the tenant's site), best supported match by weight.
        var korean = await SubscribeAsync("fr;q=1, ko-KR;q=0.8, en;q=0.5", null);
        Assert.Equal("Weekly 구독을 확인해 주세요", korean.Subject);
        Assert.Contains("lang=\"ko\"", korean.Html);
        Assert.Contains(Strings.For("ko")["mail.button"], korean.Html);
        // The lang preference comes first.
        var chinese = await SubscribeAsync("ko", new { lang = "zh-Hant" });
        Assert.Contains("lang=\"zh-TW\"", chinese.Html);
        Assert.Equal(Texts.Fill(Strings.For("zh-TW")["mail.subject"], new Dictionary<string, string> { ["list"] = "Weekly" }), chinese.Subject);
        // No usable Accept-Language (none, or only unsupported ones): the list's default.
        Assert.Equal("Weekly の購読を確認してください", (await SubscribeAsync("fr, de;q=0.5", null)).Subject);
        Assert.Equal("Weekly の購読を確認してください", (await SubscribeAsync(null, null)).Subject);
    }

    [Fact]
    public void Every_language_has_every_string()
    {
        var english = Strings.KeysOf("en").ToHashSet();
        foreach (var language in ReaderLanguages.All)
        {
            var keys = Strings.KeysOf(language).ToHashSet();
            Assert.True(english.SetEquals(keys), $"{language}: missing {string.Join(", ", english.Except(keys))}; extra {string.Join(", ", keys.Except(english))}");
            Assert.Equal(language, Strings.For(language).Language);
        }
    }

    private async Task<HttpClient> PersonApiAsync(TestTenant tenant, string role)
    {
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, role));
        using var client = new PersonClient(mc);
        var tokens = await client.SignInAsync(person.Email!, tenant.TenantId);
        return mc.Http(tokens.GetProperty("access_token").GetString());
    }

    [Fact]
    public async Task Branding_and_preference_fields_are_changed_by_admins_and_owners_not_by_editors_or_viewers()
    {
        var tenant = await mc.CreateTenantAsync();
        foreach (var role in new[] { Roles.Editor, Roles.Viewer })
        {
            using var api = await PersonApiAsync(tenant, role);
            // They read the settings (the console shows them read-only) ...
            Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("api/branding")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await api.GetAsync($"api/lists/{tenant.ListId}/preference-fields")).StatusCode);
            // ... and may not change them: tenant-wide settings need newsletter:settings.write.
            foreach (var refused in new[]
            {
                await api.PutAsJsonAsync("api/branding", new { display_name = role + " was here", postal_address = "1 Main St" }),
                await api.PutAsJsonAsync($"api/lists/{tenant.ListId}/preference-fields", Fields()),
            })
            {
                using (refused)
                {
                    Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
                    Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
                }
            }
        }
        // An editor keeps what editing lists means: creating a list.
        using (var editor = await PersonApiAsync(tenant, Roles.Editor))
        {
            using var list = await editor.PostAsJsonAsync("api/lists", new { name = "Editor's list" });
            Assert.Equal(HttpStatusCode.Created, list.StatusCode);
        }
        using var tenantApi = tenant.Api();
        var untouched = (await tenantApi.GetFromJsonAsync<BrandingResponse>("api/branding", MemberCenterFixture.Json))!;
        Assert.Null(untouched.DisplayName);
        Assert.Null(untouched.PostalAddress);

        foreach (var role in new[] { Roles.Admin, Roles.Owner })
        {
            using var api = await PersonApiAsync(tenant, role);
            await MemberCenterFixture.ReadAsync<BrandingResponse>(await api.PutAsJsonAsync("api/branding", new { display_name = "Set by " + role, postal_address = "1 Main St" }));
            await MemberCenterFixture.ReadAsync<PreferenceFieldsResponse>(await api.PutAsJsonAsync($"api/lists/{tenant.ListId}/preference-fields", Fields("ja")));
        }
        var after = (await tenantApi.GetFromJsonAsync<BrandingResponse>("api/branding", MemberCenterFixture.Json))!;
        Assert.Equal(("Set by owner", "1 Main St"), (after.DisplayName, after.PostalAddress));
        // The tenant's own site (a tenant_api client) keeps changing them, as before the scope existed.
        await MemberCenterFixture.ReadAsync<BrandingResponse>(await tenantApi.PutAsJsonAsync("api/branding", new { display_name = "Set by the site" }));
    }

    [Fact]
    public async Task A_CSV_import_checks_preferences_against_the_lists_fields_and_reports_bad_rows_by_line_and_field()
    {
        var tenant = await mc.CreateTenantAsync();
        await PutFieldsAsync(tenant, Fields());
        using var api = tenant.Api();
        var tag = Guid.NewGuid().ToString("N")[..8];
        string Address(int i) => $"imp{i}-{tag}@example.com";
        var csv = string.Join("\r\n",
            "email,frequency,topics,digest,nickname,lang",
            $"{Address(2)},weekly,tech;art,yes,Ann,zh-tw",      // line 2: good, typed as the fields say
            $"{Address(3)},hourly,,,,",                          // line 3: not one of the choices
            $"{Address(4)},daily,tech;cooking,,,",               // line 4: cooking is no topic
            $"{Address(5)},daily,,maybe,,",                      // line 5: not a boolean
            $"{Address(6)},,art,,,",                             // line 6: frequency is required
            $"{Address(7)},daily,,,,fr",                         // line 7: no such page language
            $"{Address(8)},daily,,no,,") + "\r\n";             // line 8: good
        var accepted = await SubscriberDirectoryTests.UploadAsync(api, tenant.ListId, csv);
        Assert.Equal((7, 5), (accepted.TotalRows, accepted.Invalid));
        var done = await SubscriberDirectoryTests.WaitForImportAsync(api, tenant.ListId, accepted.ImportId);
        Assert.Equal((7, 2, 5), (done.Processed, done.Created, done.Invalid));
        Assert.Equal([(3, "frequency"), (4, "topics"), (5, "digest"), (6, "frequency"), (7, "lang")], done.InvalidLines.Select(l => (l.Line, l.Field)));
        Assert.Contains("daily, weekly", done.InvalidLines[0].Reason);
        Assert.Contains("required", done.InvalidLines[3].Reason);

        var imported = (await api.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/{Address(2)}", MemberCenterFixture.Json))!;
        var prefs = Assert.Single(imported.Subscriptions).Preferences!;
        Assert.Equal("weekly", prefs["frequency"].GetString());
        Assert.Equal(["tech", "art"], prefs["topics"].EnumerateArray().Select(t => t.GetString()));
        Assert.True(prefs["digest"].GetBoolean());
        Assert.Equal("zh-TW", prefs["lang"].GetString());
        Assert.False((await api.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/{Address(8)}", MemberCenterFixture.Json))!
            .Subscriptions.Single().Preferences!["digest"].GetBoolean());

        // A column that is none of the list's fields is a mistake in the file: refused whole, naming it.
        using var content = new StringContent($"email,frequency,colour\r\n{Address(9)},daily,red\r\n", System.Text.Encoding.UTF8, "text/csv");
        using var unknown = await api.PostAsync($"api/lists/{tenant.ListId}/imports?mode=confirmed&consent_note=crm", content);
        Assert.Contains("colour", (await ErrorsAsync(unknown))["file"].Single());
    }
}
