using System.Net.Http.Json;
using Newsletter.Contracts;

namespace Console.Tests;

/// <summary>The Branding page and a list's Preference fields page: edited by an admin, read-only for an editor and a viewer, another
/// tenant's list a 404 by URL, a post without the antiforgery token refused, the API's 400 shown in place.</summary>
public sealed class ReaderSettingsConsoleTests(ConsoleFixture fx)
{
    [Fact]
    public async Task An_admin_sets_the_branding_and_a_lists_preference_fields()
    {
        var listId = await fx.ListWithSubscribersAsync(fx.TenantA, $"Prefs {Guid.NewGuid():N}"[..14], "email\n");
        await fx.WithPageAsync(fx.Admin, async page =>
        {
            await page.GotoAsync("/branding");
            await page.AssertAccessibleAsync("/branding");
            await page.FillAsync("#b-name", "Acme Reader News");
            await page.FillAsync("#b-primary", "not-a-colour");
            await page.ClickAsync("#save-branding");
            await page.WaitForSelectorAsync("#problem");
            Assert.Contains("primary_color", await page.TextContentAsync("#problem"));
            Assert.Equal("Acme Reader News", await page.InputValueAsync("#b-name")); // what was typed stays

            await page.FillAsync("#b-primary", "#7c2d12");
            await page.FillAsync("#b-address", "1 Main St, Springfield");
            await page.FillAsync("#subject-ja", "{list} の購読確認");
            await page.FillAsync("#text-ja", "確認はこちら：{link}");
            await page.ClickAsync("#save-branding");
            await page.WaitForSelectorAsync("#notice");

            await page.GotoAsync($"/lists/{listId}/preference-fields");
            Assert.Equal("Preference fields", await page.TextContentAsync("h1"));
            await page.FillAsync("#f-key", "topics");
            await page.SelectOptionAsync("#f-type", "multiple_choice");
            await page.FillAsync("#label-en", "Topics");
            await page.FillAsync("#label-ja", "トピック");
            await page.FillAsync("#f-choices", "tech; Technology; 科技; 科技; テクノロジー; 기술\nart; Art");
            await page.ClickAsync("#save-field");
            await page.WaitForSelectorAsync("#notice");
            Assert.Equal(1, await page.Locator("#fields tr[data-key='topics']").CountAsync());
            await page.SelectOptionAsync("#default-language", "ko");
            await page.ClickAsync("#save-language");
            await page.WaitForSelectorAsync("#notice");
            await page.AssertAccessibleAsync("/lists/{id}/preference-fields");

            // A field the API refuses (a choice field without choices): its 400 is shown, nothing is added.
            await page.FillAsync("#f-key", "size");
            await page.SelectOptionAsync("#f-type", "single_choice");
            await page.ClickAsync("#save-field");
            await page.WaitForSelectorAsync("#problem");
            Assert.Equal(0, await page.Locator("#fields tr[data-key='size']").CountAsync());

            using var mc = await fx.MemberCenterClientAsync(fx.TenantA);
            var branding = (await mc.GetFromJsonAsync<BrandingResponse>("api/branding", ConsoleFixture.Json))!;
            Assert.Equal("Acme Reader News", branding.DisplayName);
            Assert.Equal("1 Main St, Springfield", branding.PostalAddress);
            Assert.Equal("{list} の購読確認", branding.ConfirmationMail["ja"].Subject);
            var fields = (await mc.GetFromJsonAsync<PreferenceFieldsResponse>($"api/lists/{listId}/preference-fields", ConsoleFixture.Json))!;
            Assert.Equal("ko", fields.DefaultLanguage);
            var topics = Assert.Single(fields.Fields);
            Assert.Equal("トピック", topics.Labels!["ja"]);
            Assert.Equal(["tech", "art"], topics.Choices!.Select(c => c.Value));
            Assert.Equal("기술", topics.Choices![0].Labels!["ko"]);
        });
    }

    [Fact]
    public async Task A_viewer_reads_but_cannot_change_and_another_tenants_list_is_404()
    {
        await fx.WithPageAsync(fx.Viewer, async page =>
        {
            Assert.Equal(200, (await page.GotoAsync("/branding"))!.Status);
            Assert.Equal(0, await page.Locator("#save-branding").CountAsync());
            Assert.True(await page.Locator("#b-name").IsDisabledAsync());
            await page.AssertAccessibleAsync("/branding (viewer)");
            // The form posted anyway (its antiforgery token included): the page refuses the role.
            // Posted with the session and the page's own antiforgery token (a request, not a form navigation, so the next
            // GotoAsync cannot race it).
            var form = page.Context.APIRequest.CreateFormData();
            form.Set("__RequestVerificationToken", await page.InputValueAsync("#branding-form input[name=__RequestVerificationToken]"));
            form.Set("displayName", "Viewer was here");
            var refused = await page.APIRequest.PostAsync("/branding", new() { Form = form, MaxRedirects = 0 });
            Assert.Equal(403, refused.Status);

            Assert.Equal(200, (await page.GotoAsync($"/lists/{fx.TenantA.ListId}/preference-fields"))!.Status);
            Assert.Equal(0, await page.Locator("#add-field").CountAsync());
            Assert.Equal(404, (await page.GotoAsync($"/lists/{fx.TenantB.ListId}/preference-fields"))!.Status);
        });
    }

    [Fact]
    public async Task An_editor_reads_the_tenant_wide_settings_but_gets_no_edit_form_and_a_post_is_refused()
    {
        await fx.WithPageAsync(fx.Editor, async page =>
        {
            // Branding and preference fields are tenant-wide settings: admins and owners change them, editors do not.
            Assert.Equal(200, (await page.GotoAsync("/branding"))!.Status);
            Assert.Equal(0, await page.Locator("#save-branding").CountAsync());
            Assert.True(await page.Locator("#b-address").IsDisabledAsync());
            var form = page.Context.APIRequest.CreateFormData();
            form.Set("__RequestVerificationToken", await page.InputValueAsync("#branding-form input[name=__RequestVerificationToken]"));
            form.Set("displayName", "Editor was here");
            Assert.Equal(403, (await page.APIRequest.PostAsync("/branding", new() { Form = form, MaxRedirects = 0 })).Status);

            Assert.Equal(200, (await page.GotoAsync($"/lists/{fx.TenantA.ListId}/preference-fields"))!.Status);
            Assert.Equal(0, await page.Locator("#add-field").CountAsync());
            Assert.Equal(0, await page.Locator("#save-language").CountAsync());
            Assert.True(await page.Locator("#default-language").IsDisabledAsync());
            await page.AssertAccessibleAsync("/lists/{id}/preference-fields (editor)");

            using var mc = await fx.MemberCenterClientAsync(fx.TenantA);
            Assert.NotEqual("Editor was here", (await mc.GetFromJsonAsync<BrandingResponse>("api/branding", ConsoleFixture.Json))!.DisplayName);
        });
    }

    [Fact]
    public async Task A_post_without_the_antiforgery_token_is_refused()
    {
        var context = await fx.SignedInAsync(fx.Owner);
        var form = context.APIRequest.CreateFormData();
        form.Set("displayName", "Forged");
        var response = await context.APIRequest.PostAsync("/branding", new() { Form = form, MaxRedirects = 0 });
        Assert.Equal(400, response.Status);
        using var mc = await fx.MemberCenterClientAsync(fx.TenantA);
        Assert.NotEqual("Forged", (await mc.GetFromJsonAsync<BrandingResponse>("api/branding", ConsoleFixture.Json))!.DisplayName);
    }
}
